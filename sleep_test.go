package runpool

import (
	"errors"
	"fmt"
	"testing"
)

// awayMark is a dial error that says for itself whether it is the server
// being away, as the connector marks a provider's wake-up message.
type awayMark struct{ away bool }

func (a awayMark) Error() string    { return "marked" }
func (a awayMark) ServerAway() bool { return a.away }
func (a awayMark) SQLState() string { return "XX000" }

// TestWakeErrorIsServerAway: an error marked as the server being away is
// taken at its word, before its SQLSTATE (a provider's wake-up message
// comes with XX000, which alone is not).
func TestWakeErrorIsServerAway(t *testing.T) {
	if !serverAway(fmt.Errorf("dial: %w", awayMark{true})) {
		t.Error("a wake-up error marked away is not taken as the server away")
	}
	if serverAway(awayMark{false}) {
		t.Error("an error marked not away is taken as the server away")
	}
	if serverAway(errors.New("XX000")) {
		t.Error("an unmarked error is taken as the server away")
	}
}
