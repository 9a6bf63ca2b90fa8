package soak

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
)

// localPools are the pools in this process, one per adapter, under the
// same faults: after one is shut down (pgx) and the other closed (sql), no
// goroutine of theirs may remain and no backend of theirs either.
type localPools struct {
	names  []string
	dbs    []adaptertest.DB
	nats   []*natPath
	drains []runpool.DrainReport
	wg     sync.WaitGroup
}

func (s *soak) startLocalPools(t *testing.T, stop <-chan struct{}) *localPools {
	t.Helper()
	lp := &localPools{}
	for i, a := range adaptertest.Adapters {
		nat, err := s.newNAT("soak-local-" + a.Name)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		db, err := a.Open(ctx, nat.dsn, inProcessConfig())
		cancel()
		if err != nil {
			t.Fatalf("[seed %d] open the local %s pool: %v", s.seed, a.Name, err)
		}
		nat.arm()
		lp.names = append(lp.names, a.Name)
		lp.dbs = append(lp.dbs, db)
		lp.nats = append(lp.nats, nat)
		who := "local " + a.Name + " pool"
		lp.wg.Add(1)
		go func() {
			defer lp.wg.Done()
			workload(db, 1000+i, s.seed, stop, func(o outcome) { s.record(o, who) })
		}()
	}
	s.mu.Lock()
	s.localNATs = append(s.localNATs, lp.nats...)
	s.mu.Unlock()
	return lp
}

// finish waits for the workloads to stop, shuts the pgx pool down and
// closes the sql one, then checks that their backends are gone.
func (lp *localPools) finish(t *testing.T, s *soak) {
	t.Helper()
	lp.wg.Wait()
	for i, db := range lp.dbs {
		if i%2 == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout+time.Second)
			rep, err := db.Shutdown(ctx)
			cancel()
			lp.drains = append(lp.drains, rep)
			if err != nil || rep.Abandoned > 0 {
				s.violate("local %s pool: Shutdown: %+v, %v", lp.names[i], rep, err)
			}
		} else {
			db.Close()
		}
		if st := db.Stat(); st.TotalConns() != 0 {
			s.violate("local %s pool still holds %d connections after it closed", lp.names[i], st.TotalConns())
		}
	}
	for i, nat := range lp.nats {
		if left, err := s.pollNoBackends(nat.name, reclaimWindow+3*time.Second); left != "" || err != nil {
			s.violate("local %s pool closed but its backends remain past the reclaim window: %s%v", lp.names[i], left, errOrEmpty(err))
		}
	}
}
