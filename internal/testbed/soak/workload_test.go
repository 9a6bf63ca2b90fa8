package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runpool/runpool/internal/testbed/adaptertest"
)

// outcome is what one INSERT's caller saw.
type outcome struct {
	Key    string `json:"k"`
	Class  string `json:"c"`
	NotRun bool   `json:"nr,omitempty"` // the error proves the row was not written
	Err    string `json:"e,omitempty"`
}

// The load every instance runs: steady writers plus bursts, each INSERT
// with its own deadline and a unique key, each holding its statement on
// the server a few milliseconds so faults meet statements in flight.
const (
	steadyWriters = 2
	requestLimit  = 2 * time.Second
	insertSQL     = "INSERT INTO ledger (k, inst) SELECT $1, $2 FROM pg_sleep($3)"
)

// workload writes to the ledger through db until stop is closed, then
// returns once every write it began has reported its outcome.
func workload(db adaptertest.DB, inst int, seed uint64, stop <-chan struct{}, report func(outcome)) {
	var seq atomic.Int64
	var rngMu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, uint64(inst)))
	between := func(lo, hi time.Duration) time.Duration {
		rngMu.Lock()
		defer rngMu.Unlock()
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	}
	insert := func() outcome {
		key := fmt.Sprintf("%d-%d", inst, seq.Add(1))
		ctx, cancel := context.WithTimeout(context.Background(), requestLimit)
		defer cancel()
		err := db.Exec(ctx, insertSQL, key, inst, between(0, 20*time.Millisecond).Seconds())
		o := outcome{Key: key}
		o.Class, o.NotRun = classify(ctx, err)
		if err != nil {
			o.Err = err.Error()
		}
		report(o)
		return o
	}
	pause := func(d time.Duration) bool {
		select {
		case <-stop:
			return false
		case <-time.After(d):
			return true
		}
	}
	var wg sync.WaitGroup
	for range steadyWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				wait := between(20*time.Millisecond, 60*time.Millisecond)
				if insert().Class != classOK {
					wait += 50 * time.Millisecond // no busy loop while the server is down
				}
				if !pause(wait) {
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // bursts: a handful of requests at once, as a request spike brings
		defer wg.Done()
		for pause(between(500*time.Millisecond, 2*time.Second)) {
			n := int(between(6, 12))
			var burst sync.WaitGroup
			for range n {
				burst.Add(1)
				go func() { defer burst.Done(); insert() }()
			}
			burst.Wait()
		}
	}()
	wg.Wait()
}
