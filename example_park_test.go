package runpool_test

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// session is a caller that keeps a connection between its uses, as
// database/sql keeps idle driver connections (sqladapter's shells do
// this): it parks the connection instead of releasing it, and takes it
// back with Unpark, which succeeds while the pool has not needed it and
// a checkout would trust it without I/O.
type session struct {
	pool *runpool.Pool[*pgx.Conn]
	held *runpool.Conn[*pgx.Conn] // parked between uses
}

func (s *session) run(ctx context.Context, sql string) error {
	if s.held == nil || !s.held.Unpark(ctx) {
		c, err := s.pool.Acquire(ctx) // checked as any checkout is
		if err != nil {
			s.held = nil
			return err
		}
		s.held = c
	}
	_, err := s.held.Value().Exec(ctx, sql)
	if !s.held.Park() { // closed, or handed to a caller waiting for it
		s.held = nil
	}
	return err
}

// A connector whose callers park connections says so with a method
// Parks() bool that reports true; on other pools Park is Release. Here parkingConnector (park_test.go)
// wraps pgx.Connect.
func ExampleConn_Park() {
	pool, err := runpool.New(runpool.Config{MaxConns: 4}, &parkingConnector{url: "postgres://localhost/app"}, runpool.Hooks[*pgx.Conn]{})
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	s := &session{pool: pool}
	ctx := context.Background()
	for range 3 {
		if err := s.run(ctx, "select 1"); err != nil {
			panic(err)
		}
	}
	if s.held != nil {
		s.held.Release()
	}
}
