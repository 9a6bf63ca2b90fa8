package runpool

import (
	"testing"
	"time"
)

// A dial time measured seconds ago (a cold start beside other
// instances) does not linger in the estimate: the first dial after a
// pause of estimateFresh starts it afresh, while dials close together
// are averaged.
func TestDialEstimateStartsAfreshAfterAPause(t *testing.T) {
	var h estimates
	h.dialTook(240 * time.Millisecond)
	h.dialTook(40 * time.Millisecond)
	if got, want := time.Duration(h.dialNanos.Load()), 190*time.Millisecond; got != want {
		t.Fatalf("two dials in a row: estimate %v, want %v (moving average, 1/4 weight)", got, want)
	}
	h.dialAt.Store(nanotime() - int64(estimateFresh) - int64(time.Millisecond))
	h.dialTook(25 * time.Millisecond)
	if got := time.Duration(h.dialNanos.Load()); got != 25*time.Millisecond {
		t.Fatalf("a dial after a pause: estimate %v, want 25ms (the old estimate dropped)", got)
	}
}
