package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
)

// A child instance is this test binary re-executed with childEnv set: it
// opens a pool from the environment (DATABASE_URL and RUNPOOL_*, as a
// service does), runs the workload, reports every outcome as a JSON line
// on stdout, and on SIGTERM stops, drains and reports the drain.
const childEnv = "RUNPOOL_SOAK_CHILD"

// childMsg is one line a child writes.
type childMsg struct {
	Ready    bool                 `json:"ready,omitempty"`
	Outcome  *outcome             `json:"o,omitempty"`
	Drain    *runpool.DrainReport `json:"drain,omitempty"`
	DrainErr string               `json:"drainErr,omitempty"`
	MaxConns int32                `json:"maxConns,omitempty"`
}

func adapterNamed(name string) (adaptertest.Adapter, bool) {
	for _, a := range adaptertest.Adapters {
		if a.Name == name {
			return a, true
		}
	}
	return adaptertest.Adapter{}, false
}

func runChild() int {
	a, ok := adapterNamed(os.Getenv(childEnv))
	if !ok {
		fmt.Fprintln(os.Stderr, "soak child: unknown adapter", os.Getenv(childEnv))
		return 2
	}
	inst, _ := strconv.Atoi(os.Getenv(childEnv + "_ID"))
	seed, _ := strconv.ParseUint(os.Getenv(childEnv+"_SEED"), 10, 64)
	term := make(chan os.Signal, 1) // the platform's stop: drain, then exit
	signal.Notify(term, syscall.SIGTERM)
	go func() { // stdin ends when the test binary dies, however it died
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()

	cfg, err := runpool.ConfigFromEnv(runpool.Config{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	db, err := a.Open(ctx, os.Getenv("DATABASE_URL"), cfg)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak child: open:", err)
		return 1
	}
	var mu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	send := func(m childMsg) {
		mu.Lock()
		defer mu.Unlock()
		_ = out.Encode(m)
	}
	send(childMsg{Ready: true, MaxConns: db.Stat().MaxConns()})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		workload(db, inst, seed, stop, func(o outcome) { send(childMsg{Outcome: &o}) })
		close(done)
	}()
	<-term
	close(stop)
	<-done
	ctx, cancel = context.WithTimeout(context.Background(), drainTimeout)
	rep, err := db.Shutdown(ctx)
	cancel()
	m := childMsg{Drain: &rep}
	if err != nil {
		m.DrainErr = err.Error()
	}
	send(m)
	return 0
}

// instance is the parent's handle on a child.
type instance struct {
	id      int
	adapter string
	nat     *natPath
	cmd     *exec.Cmd
	stderr  bytes.Buffer   // the child's warnings, shown if it fails
	stdin   io.WriteCloser // held open: the child exits when it ends
	maxConn int32

	mu       sync.Mutex
	drain    *runpool.DrainReport
	drainErr string
	exited   chan struct{} // closed once the child exited and its output was read
	exitErr  error
	termed   bool
}

// startInstance starts a child pool of adapter on nat's path and waits
// until it has opened its pool.
func (s *soak) startInstance(adapter string) (*instance, error) {
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.mu.Unlock()
	nat, err := s.newNAT(fmt.Sprintf("soak-%d", id))
	if err != nil {
		return nil, err
	}
	inst := &instance{id: id, adapter: adapter, nat: nat, exited: make(chan struct{})}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		childEnv+"="+adapter,
		childEnv+"_ID="+strconv.Itoa(id),
		childEnv+"_SEED="+strconv.FormatUint(s.seed, 10),
		"DATABASE_URL="+nat.dsn,
	)
	cmd.Env = append(cmd.Env, s.instanceEnv()...)
	cmd.Stderr = &lockedWriter{w: &inst.stderr, mu: &inst.mu}
	// Not Pdeathsig: it fires when the forking thread exits, and pgtest's
	// server watcher retires its thread on every restart. The child exits
	// when its stdin, held open by this process, ends.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	inst.stdin = stdin
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	inst.cmd = cmd
	ready := make(chan int32, 1)
	go func() {
		defer close(inst.exited)
		opened := false
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m childMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				s.violate("instance %d wrote a line that is not JSON: %q", id, sc.Text())
				continue
			}
			switch {
			case m.Ready:
				opened = true
				ready <- m.MaxConns
			case m.Outcome != nil:
				s.record(*m.Outcome, fmt.Sprintf("instance %d (%s)", id, adapter))
			case m.Drain != nil:
				inst.mu.Lock()
				inst.drain, inst.drainErr = m.Drain, m.DrainErr
				inst.mu.Unlock()
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		err := cmd.Wait()
		_ = stdin.Close()
		inst.mu.Lock()
		inst.exitErr = err
		termed := inst.termed
		inst.mu.Unlock()
		if !termed && opened {
			s.violate("instance %d (%s) exited without a SIGTERM: %v\n%s", id, adapter, err, inst.stderrText())
		}
	}()
	select {
	case inst.maxConn = <-ready:
		nat.arm()
	case <-inst.exited:
		return nil, fmt.Errorf("instance %d (%s) exited before its pool opened: %v\n%s", id, adapter, inst.exitErr, inst.stderrText())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-inst.exited
		return nil, fmt.Errorf("instance %d (%s) did not open its pool within 60s\n%s", id, adapter, inst.stderrText())
	}
	s.mu.Lock()
	s.instances = append(s.instances, inst)
	s.mu.Unlock()
	return inst, nil
}

func (i *instance) stderrText() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.stderr.String()
}

// kill ends the child at once (cleanup after a failed test).
func (i *instance) kill() {
	i.mu.Lock()
	i.termed = true
	i.mu.Unlock()
	_ = i.cmd.Process.Signal(syscall.SIGCONT)
	_ = i.cmd.Process.Kill()
	<-i.exited
}

// terminate sends SIGTERM (the platform's stop), once.
func (i *instance) terminate() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.termed {
		i.termed = true
		_ = i.cmd.Process.Signal(syscall.SIGTERM)
	}
}

func (i *instance) running() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	select {
	case <-i.exited:
		return false
	default:
		return !i.termed
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
