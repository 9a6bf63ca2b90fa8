package pgxadapter_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
)

// BenchmarkAcquireRelease compares the pool's own overhead, side by side
// in one process: parallel checkout and return of an idle connection,
// with as many connections as goroutines so nobody waits.
// Compare with: go test -run NONE -bench AcquireRelease -count 10 ./pgxadapter | benchstat -col /pool -
func BenchmarkAcquireRelease(b *testing.B) {
	srv := pgtest.Shared(b)
	ctx := context.Background()
	const conns = 8

	runpoolWith := func(slots string) func(b *testing.B) {
		return func(b *testing.B) {
			cfg, err := pgxadapter.ParseConfig(srv.URL())
			if err != nil {
				b.Fatal(err)
			}
			cfg.MaxConns = conns
			cfg.Pool.Logger = slog.New(slog.DiscardHandler) // keep the drain line out of the results
			if slots != runpool.BudgetSlotsOff {
				cfg.Pool.Budget, cfg.Pool.MaxInstances, cfg.Pool.BudgetSlots = 2*conns+2, 1, slots
				cfg.Pool.Name = b.Name() // a key space of its own
			}
			p, err := pgxadapter.NewWithConfig(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			benchAcquireRelease(b, p.Acquire)
		}
	}
	b.Run("pool=runpool", runpoolWith(runpool.BudgetSlotsOff))
	// With budget slots, each checkout also asks whether the connection
	// holds the instance's pass (SlotHolder.WantsProbe).
	b.Run("pool=runpool-slots", runpoolWith(runpool.BudgetSlotsAdvisory))
	b.Run("pool=pgxpool", func(b *testing.B) {
		cfg, err := pgxpool.ParseConfig(srv.URL())
		if err != nil {
			b.Fatal(err)
		}
		cfg.MaxConns = conns
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		benchAcquireRelease(b, p.Acquire)
	})
}

// benchAcquireRelease times checking out with acquire and returning at
// once, in parallel.
func benchAcquireRelease[C interface{ Release() }](b *testing.B, acquire func(context.Context) (C, error)) {
	ctx := context.Background()
	acquireRelease := func() {
		c, err := acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		c.Release()
	}
	for range 8 { // open the connections before timing
		acquireRelease()
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			acquireRelease()
		}
	})
}
