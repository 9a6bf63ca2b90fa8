package runpool

import (
	"context"
	"testing"
	"time"
)

// CheckedOut counts the connections callers hold, not the pool's own
// holds (here, the maintainer's sweep taking every idle connection), which
// Stat's AcquiredConns counts.
func TestCheckedOutCountsCallersOnly(t *testing.T) {
	p, _ := openFake(t, Config{MaxConns: 4, MaintainInterval: time.Hour})
	ctx := context.Background()
	var held []*Conn[*fakeConn]
	for range 3 {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	held[2].Release()
	if n := p.CheckedOut(); n != 2 {
		t.Fatalf("CheckedOut %d with 2 connections held by callers, want 2", n)
	}
	idle := p.p.AcquireAllIdle() // as the maintainer's sweep does
	if got := p.Stat().AcquiredConns(); got != 3 {
		t.Fatalf("AcquiredConns %d during the pool's own hold, want 3", got)
	}
	if n := p.CheckedOut(); n != 2 {
		t.Fatalf("CheckedOut %d during the pool's own hold of an idle connection, want 2", n)
	}
	for _, r := range idle {
		r.ReleaseUnused()
	}
	for _, c := range held[:2] {
		c.Release()
	}
	if n := p.CheckedOut(); n != 0 {
		t.Fatalf("CheckedOut %d after every caller released, want 0", n)
	}
}
