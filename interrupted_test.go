package runpool

import (
	"testing"
	"time"
)

// Guards against: the verdict on an interrupted connection sparing the
// path when the server's answer came late, after a failure, or not at
// all, or condemning it when the server answered in time.
func TestInterruptVerdict(t *testing.T) {
	at := time.Now()
	const grace = 100 * time.Millisecond
	ms := func(n int) time.Time { return at.Add(time.Duration(n) * time.Millisecond) }
	for _, c := range []struct {
		name string
		in   Interruption
		now  time.Time
		want pathVerdict
	}{
		{"broke without an interruption", Interruption{}, ms(0), pathTrouble},
		{"no answer yet", Interruption{At: at}, ms(50), pathUnsure},
		{"no answer within grace", Interruption{At: at}, ms(100), pathTrouble},
		{"answered within grace", Interruption{At: at, Answered: ms(30)}, ms(30), pathSound},
		{"answered, judged late", Interruption{At: at, Answered: ms(30)}, ms(500), pathSound},
		{"answered after grace", Interruption{At: at, Answered: ms(150)}, ms(150), pathTrouble},
		{"reset before any answer", Interruption{At: at, Failed: ms(10)}, ms(10), pathTrouble},
		{"answered, then closed", Interruption{At: at, Answered: ms(10), Failed: ms(20)}, ms(20), pathSound},
		{"reset, then bytes", Interruption{At: at, Failed: ms(10), Answered: ms(20)}, ms(20), pathTrouble},
	} {
		if got := interruptVerdict(c.in, c.now, grace); got != c.want {
			t.Errorf("%s: verdict %d, want %d", c.name, got, c.want)
		}
	}
}
