package runpool

import (
	"errors"
	"io"
	"syscall"
)

// serverAway reports whether a failed dial says the server is away for a
// moment rather than that the pool's settings are wrong: nobody listens
// (a restart), the server closed the connection during its startup, or
// it answered that it cannot take connections now (57P03: starting up,
// shutting down, in recovery) or is going down (57P01, 57P02). A wrong
// password, an unknown database or role, a refused TLS handshake are not:
// the caller gets them at once. Open's first dial never waits (its errors
// are the configuration's); 53300 has its own back-pressure (budget.go).
// An error that says for itself whether it is the server being away
// (ServerAway, as the connector marks a provider's wake-up message or a
// server refused as read-only while a writer was required) is taken at
// its word.
func serverAway(err error) bool {
	var a interface{ ServerAway() bool }
	if errors.As(err, &a) {
		return a.ServerAway()
	}
	var s interface{ SQLState() string }
	if errors.As(err, &s) {
		switch s.SQLState() {
		case "57P01", "57P02", "57P03":
			return true
		}
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
