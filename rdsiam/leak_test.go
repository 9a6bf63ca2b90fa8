package rdsiam_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/runpool/runpool/pgxadapter"
	"github.com/runpool/runpool/rdsiam"
	"github.com/runpool/runpool/sqladapter"
)

// syncBuffer is a bytes.Buffer for concurrent log writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Both adapters, through renewals, a refused token renewed, and logins
// refused for good: no token, nor a piece of its signature, shows in
// anything logged (at debug level) or in the text of any error a caller
// gets.
func TestNoTokenInLogsOrErrors(t *testing.T) {
	s := startRDSStandIn(t)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prev := slog.Default()
	slog.SetDefault(logger)
	t.Cleanup(func() { slog.SetDefault(prev) })

	var mu sync.Mutex
	var tokens, texts []string
	record := func(err error) {
		if err != nil {
			mu.Lock()
			texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
			mu.Unlock()
		}
	}

	for _, adapter := range []string{"pgxadapter", "sqladapter"} {
		t.Run(adapter, func(t *testing.T) {
			user := s.srv.CreateRole(t, -1)
			a := s.newAuth(t, staticCredentials())
			rdsiam.SetSchedule(a, 3*time.Second, 300*time.Millisecond, 0)
			rdsiam.SetIssued(a, func(ctx context.Context, user, token string, validUntil time.Time) error {
				mu.Lock()
				tokens = append(tokens, token)
				mu.Unlock()
				return s.issued(ctx, user, token, validUntil)
			})
			cfg, err := pgxadapter.ParseConfig(s.dsn(user, "verify-full"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.RDSIAM = a
			cfg.Pool.Logger = logger
			cfg.Pool.ServerAwayTimeout = -1 // a refused login fails the caller at once
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			var query func() error
			switch adapter {
			case "pgxadapter":
				pool, err := pgxadapter.NewWithConfig(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer pool.Close()
				query = func() error { var n int; return pool.QueryRow(ctx, "SELECT 1").Scan(&n) }
			case "sqladapter":
				db, err := sqladapter.Open(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				db.SetMaxIdleConns(0) // every query checks a connection out of runpool
				query = func() error { var n int; return db.QueryRowContext(ctx, "SELECT 1").Scan(&n) }
			}
			// The next query dials: the server ended the pool's sessions.
			reset := func() { s.srv.TerminateBackends(t, user) }

			// Renewals: a new connection each round, tokens renewed every 300 ms.
			for i := range 8 {
				reset()
				if err := query(); err != nil {
					t.Fatalf("round %d: %v", i, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// A refused token, renewed and the dial retried.
			if err := s.setPassword(ctx, user, "revoked", time.Time{}); err != nil {
				t.Fatal(err)
			}
			reset()
			if err := query(); err != nil {
				t.Fatalf("after a refusal: %v", err)
			}
			// Refused for good: the caller's error.
			if err := s.setPassword(ctx, user, "revoked", time.Time{}); err != nil {
				t.Fatal(err)
			}
			s.rotate.Store(false)
			defer s.rotate.Store(true)
			for range 3 {
				reset()
				err := query()
				if err == nil {
					t.Fatal("a login with a revoked password succeeded")
				}
				record(err)
			}
		})
	}

	mu.Lock()
	defer mu.Unlock()
	if len(tokens) < 6 || len(texts) < 6 {
		t.Fatalf("%d tokens, %d error texts: too few to show anything", len(tokens), len(texts))
	}
	logText := logs.String()
	for _, tok := range tokens {
		if tokenLeaks(logText, tok) {
			t.Errorf("a token is in the log:\n%s", logText)
		}
		for _, text := range texts {
			if tokenLeaks(text, tok) {
				t.Errorf("a token is in an error: %s", text)
			}
		}
	}
	t.Logf("%d tokens, %d error texts, %d bytes of log; an error: %s", len(tokens), len(texts), len(logText), texts[0])
}
