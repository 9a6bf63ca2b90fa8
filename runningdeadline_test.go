package runpool

import (
	"context"
	"testing"
	"time"
)

// A running-time deadline still ends a query that never answers: never
// before d, and on a loaded machine within a few times d.
func TestRunningTimeoutEnds(t *testing.T) {
	const d = 200 * time.Millisecond
	start := time.Now()
	ctx, cancel := withRunningTimeout(context.Background(), d)
	defer cancel()
	select {
	case <-ctx.Done():
	case <-time.After(20 * d):
		t.Fatalf("not ended after %v", 20*d)
	}
	if took := time.Since(start); took < d {
		t.Fatalf("ended after %v, before its %v", took, d)
	}
	if ctx.Err() != context.Canceled {
		t.Fatalf("err %v", ctx.Err())
	}
}
