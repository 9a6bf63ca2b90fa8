package pgtest

// StartEmbedded starts a throwaway server for programs rather than tests
// (the examples use it when DATABASE_URL is unset). Call stop to shut it
// down and remove its data; it also dies with the process.
func StartEmbedded(opts Options) (s *Server, stop func() error, err error) {
	s, err = start(opts)
	if err != nil {
		return nil, nil, err
	}
	return s, s.destroy, nil
}
