package soak

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
)

// The fault kinds and their weights in the schedule.
var faultKinds = []struct {
	name   string
	weight int
}{
	{"nat-blackhole", 3}, // the NAT silently forgets one instance's flows
	{"nat-reset", 3},     // the NAT forgets them and resets the client side
	{"nat-cut", 2},       // every flow of one instance closed both ways
	{"nat-failover", 2},  // the NAT gateway is replaced: every path resets every flow
	{"freeze", 3},        // SIGSTOP an instance past the NAT's idle timeout
	{"latency", 2},       // every path slows down for a while
	{"terminate", 2},     // pg_terminate_backend of the role's backends
	{"restart", 1},       // fast shutdown and start of the server
	{"crash", 1},         // SIGKILL of the server, then a start (crash recovery)
	{"storm-limit", 1},   // 53300: the role's CONNECTION LIMIT drops, then returns
	{"storm-filler", 1},  // 53300: another client takes every free slot for a while
	{"replace", 2},       // SIGTERM an instance and start a new one, as a rollout does
}

func (s *soak) pick() string {
	total := 0
	for _, k := range faultKinds {
		total += k.weight
	}
	s.mu.Lock()
	n := s.rng.IntN(total)
	s.mu.Unlock()
	for _, k := range faultKinds {
		if n < k.weight {
			return k.name
		}
		n -= k.weight
	}
	panic("unreachable")
}

func (s *soak) intn(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(n)
}

func (s *soak) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.intn(int(hi-lo)+1))
}

// runFault draws one fault from the schedule and applies it; it returns
// once the fault is over (a frozen instance thawed, the server back).
func (s *soak) runFault(t *testing.T, filler string) {
	kind := s.pick()
	nats := s.liveNATs()
	running := s.runningInstances()
	if len(running) == 0 && (kind == "freeze" || kind == "replace") {
		kind = "nat-reset" // every child failed to start: a violation already
	}
	s.mu.Lock()
	s.faults[kind]++
	s.mu.Unlock()
	switch kind {
	case "nat-blackhole", "nat-reset":
		n := nats[s.intn(len(nats))]
		mode := faultproxy.Blackhole
		if kind == "nat-reset" {
			mode = faultproxy.Reset
		}
		n.proxy.SetMode(mode)
		n.proxy.Forget()
		s.event("%s on %s", kind, n.name)
	case "nat-failover":
		for _, n := range nats {
			n.proxy.SetMode(faultproxy.Reset)
			n.proxy.Forget()
		}
		s.event("nat-failover: every path reset")
	case "nat-cut":
		n := nats[s.intn(len(nats))]
		n.proxy.CutAll()
		s.event("nat-cut on %s", n.name)
	case "freeze":
		inst := running[s.intn(len(running))]
		d := s.between(natIdle+300*time.Millisecond, natIdle+1200*time.Millisecond)
		s.event("freeze instance %d for %v", inst.id, d)
		_ = inst.cmd.Process.Signal(syscall.SIGSTOP)
		time.Sleep(d)
		_ = inst.cmd.Process.Signal(syscall.SIGCONT)
	case "latency":
		d := s.between(2*time.Millisecond, 20*time.Millisecond)
		hold := s.between(time.Second, 2*time.Second)
		s.event("latency %v on every path for %v", d, hold)
		for _, n := range nats {
			n.proxy.SetLatency(d)
		}
		time.Sleep(hold)
		for _, n := range s.snapshotNATs() {
			n.proxy.SetLatency(0)
		}
	case "terminate":
		n := s.srv.TerminateBackends(t, s.user)
		s.event("terminated %d backends", n)
	case "restart":
		s.event("server restart")
		if err := s.srv.Restart(); err != nil {
			t.Fatalf("[seed %d] restart: %v", s.seed, err)
		}
		s.event("server back")
	case "crash":
		down := s.between(200*time.Millisecond, 800*time.Millisecond)
		s.event("server SIGKILL, down %v", down)
		if err := s.srv.Kill(); err != nil {
			t.Fatalf("[seed %d] kill: %v", s.seed, err)
		}
		time.Sleep(down)
		if err := s.srv.StartAgain(); err != nil {
			t.Fatalf("[seed %d] start after kill: %v", s.seed, err)
		}
		s.event("server back after crash recovery")
	case "storm-limit":
		hold := s.between(time.Second, 2*time.Second)
		s.event("role CONNECTION LIMIT 1 for %v", hold)
		s.srv.Exec(t, fmt.Sprintf("ALTER ROLE %s CONNECTION LIMIT 1", pgx.Identifier{s.user}.Sanitize()))
		time.Sleep(hold)
		s.srv.Exec(t, fmt.Sprintf("ALTER ROLE %s CONNECTION LIMIT -1", pgx.Identifier{s.user}.Sanitize()))
	case "storm-filler":
		hold := s.between(time.Second, 2*time.Second)
		held := s.fillServer(filler)
		s.event("filler holds %d slots (server full) for %v", len(held), hold)
		time.Sleep(hold)
		for _, c := range held {
			c.Close(context.Background())
		}
	case "replace":
		old := running[s.intn(len(running))]
		s.event("SIGTERM instance %d; starting its replacement", old.id)
		old.terminate()
		s.watchExit(old)
		inst, err := s.startInstance(old.adapter)
		if err != nil {
			s.violate("replacement for instance %d: %v", old.id, err)
			return
		}
		s.event("instance %d (%s) started, max_conns %d", inst.id, inst.adapter, inst.maxConn)
	}
}

// fillServer opens connections as another role until the server answers
// 53300, so every pool's next dial meets a full server.
func (s *soak) fillServer(filler string) []*pgx.Conn {
	var mu sync.Mutex
	var held []*pgx.Conn
	full := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range maxConnectionsSoak {
				select {
				case <-full:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c, err := pgx.Connect(ctx, s.srv.URLFor(filler, "pw", filler))
				cancel()
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "53300" {
					once.Do(func() { close(full) })
					return
				}
				if err != nil {
					return
				}
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return held
}

func (s *soak) liveNATs() []*natPath {
	var out []*natPath
	for _, inst := range s.runningInstances() {
		out = append(out, inst.nat)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(out, s.localNATs...)
}

func (s *soak) runningInstances() []*instance {
	var out []*instance
	for _, inst := range s.snapshotInstances() {
		if inst.running() {
			out = append(out, inst)
		}
	}
	return out
}

// watchExit checks, once inst exits after its SIGTERM, that it drained
// cleanly and that none of its backends outlives it beyond the server's
// reclaim window (only NAT orphans may linger that long).
func (s *soak) watchExit(inst *instance) {
	s.exitChecks.Add(1)
	go func() {
		defer s.exitChecks.Done()
		select {
		case <-inst.exited:
		case <-time.After(requestLimit + drainTimeout + 20*time.Second):
			s.violate("instance %d did not exit within %v of its SIGTERM", inst.id, requestLimit+drainTimeout+20*time.Second)
			_ = inst.cmd.Process.Kill()
			<-inst.exited
			return
		}
		inst.mu.Lock()
		exitErr, drain, drainErr := inst.exitErr, inst.drain, inst.drainErr
		inst.mu.Unlock()
		switch {
		case exitErr != nil:
			s.violate("instance %d (%s) exited with %v after SIGTERM:\n%s", inst.id, inst.adapter, exitErr, inst.stderrText())
		case drain == nil:
			s.violate("instance %d (%s) exited without reporting its drain", inst.id, inst.adapter)
		case drainErr != "" || drain.Abandoned > 0:
			s.violate("instance %d (%s) drain: %+v, error %q", inst.id, inst.adapter, *drain, drainErr)
		default:
			s.event("instance %d drained: %+v", inst.id, *drain)
			s.mu.Lock()
			s.drains++
			s.mu.Unlock()
		}
		if left, err := s.pollNoBackends(inst.nat.name, reclaimWindow+3*time.Second); left != "" || err != nil {
			s.violate("instance %d exited but its backends remain past the reclaim window: %s%v", inst.id, left, errOrEmpty(err))
		}
	}()
}
