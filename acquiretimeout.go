package runpool

import (
	"context"
	"errors"
	"time"
)

// ErrAcquireTimeout is what an *AcquireTimeoutError is (errors.Is): Acquire
// waited Config.AcquireTimeout for a connection in vain.
var ErrAcquireTimeout = errors.New("runpool: acquire timeout")

// errAcquireWait is the cause of the context that bounds an acquire by
// AcquireTimeout, telling its end from the caller's own deadline.
var errAcquireWait = errors.New("runpool: AcquireTimeout reached")

// AcquireTimeoutError is returned by Acquire when Config.AcquireTimeout
// (RUNPOOL_ACQUIRE_TIMEOUT) passed before a connection was free. It is
// also context.DeadlineExceeded (errors.Is), like any deadline.
type AcquireTimeoutError struct {
	Timeout time.Duration // the AcquireTimeout that passed
	// WaitedFor is what the pool was waiting for when the time was up:
	// "a connection in use", "a turn to dial", "a new connection",
	// "server backpressure", "the server to accept connections again" or
	// "a check of an idle connection".
	WaitedFor   string
	LastDialErr error // the last failed dial's error, when one failed; else nil
}

func (e *AcquireTimeoutError) Error() string {
	s := "runpool: no connection within AcquireTimeout (RUNPOOL_ACQUIRE_TIMEOUT) " + e.Timeout.String() +
		": waited for " + e.WaitedFor
	if e.LastDialErr != nil {
		s += " (last dial failed: " + e.LastDialErr.Error() + ")"
	}
	return s
}

// Is reports that the error is ErrAcquireTimeout.
func (e *AcquireTimeoutError) Is(target error) bool { return target == ErrAcquireTimeout }

// Unwrap returns context.DeadlineExceeded and the last dial's error, when
// one failed.
func (e *AcquireTimeoutError) Unwrap() []error {
	if e.LastDialErr != nil {
		return []error{context.DeadlineExceeded, e.LastDialErr}
	}
	return []error{context.DeadlineExceeded}
}

// waitKind is what an acquire was waiting for, for AcquireTimeoutError.
type waitKind uint8

const (
	waitUnknown    waitKind = iota // what puddle's Acquire waited for: see waitedIn
	waitInUse                      // a connection in use coming back (a full pool, awaitReturn, awaitContention)
	waitDialTurn                   // a dial token (MaxConcurrentDials)
	waitDial                       // the caller's own dial
	waitPressure                   // out a 53300
	waitServerAway                 // a server refusing connections for a moment
	waitProbe                      // the check of an idle connection
)

func (k waitKind) String() string {
	switch k {
	case waitInUse:
		return "a connection in use (MaxConns reached, or one coming back sooner than a dial)"
	case waitDialTurn:
		return "a turn to dial (MaxConcurrentDials dials in flight)"
	case waitDial:
		return "a new connection (its dial)"
	case waitPressure:
		return "server backpressure (53300: too many connections)"
	case waitServerAway:
		return "the server to accept connections again"
	case waitProbe:
		return "a check of an idle connection"
	}
	return "a connection"
}

// waitedIn tells what a failed puddle Acquire waited for: a slot, when
// the pool was full, else a dial; err's own kind when it names one.
func (p *Pool[C]) waitedIn(err error) waitKind {
	switch {
	case tooManyConnections(err):
		return waitPressure
	case serverAway(err):
		return waitServerAway
	}
	if st := p.p.Stat(); st.TotalResources() >= st.MaxResources() && st.ConstructingResources() == 0 {
		return waitInUse
	}
	return waitDial
}
