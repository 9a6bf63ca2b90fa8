package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// An instance is this program re-executed as a child process holding one
// pool, as a serverless platform runs one process per instance: the
// parent freezes it with SIGSTOP, stops it with SIGTERM, and tells it on
// stdin when to run a burst. It answers on stdout, one JSON line per
// request as each finishes, so that what a killed instance had finished
// is known too.

// instanceEnv carries the instanceSpec (JSON) to the child.
const instanceEnv = "SIMULATE_INSTANCE"

// debugEnv, when set, passes the instances' logs (at debug level) to
// stderr, and the latencies of each freeze scenario's bursts, sorted:
// SIMULATE_DEBUG=1 go run ./examples/simulate -only reset.
const debugEnv = "SIMULATE_DEBUG"

// instanceSpec is what a child needs to open its pool.
type instanceSpec struct {
	Pool string // a poolKind name
	DSN  string
	// Env is set in the child's environment: DATABASE_URL and RUNPOOL_*
	// for runpool's pools, which are configured as a user would.
	Env map[string]string
	// Hand tuning for the other pools: MaxConns per instance (0: the
	// pool's default) and the NAT idle timeout to keep idle limits under.
	MaxConns int
	NATIdle  time.Duration
	Grace    time.Duration // platform grace period: bounds the SIGTERM drain
}

// command asks the child for a burst of N concurrent pg_sleep(Query),
// each with its own Deadline, as N request handlers would run them.
type command struct {
	N        int
	Query    time.Duration
	Deadline time.Duration
}

// message is one line from the child.
type message struct {
	Ready bool    `json:",omitempty"`
	Done  bool    `json:",omitempty"` // the burst is over
	Req   request `json:",omitzero"`
}

// request is one query as its caller saw it.
type request struct {
	Start int64         // wall clock, Unix ns
	Lat   time.Duration // until the answer or the error
	Err   string        `json:",omitempty"`
}

func (r request) ok() bool { return r.Err == "" }

// runInstance is the child's main: open the pool, run bursts on command.
func runInstance(specJSON string) int {
	var spec instanceSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "instance spec:", err)
		return 2
	}
	kind, ok := poolByName(spec.Pool)
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown pool", spec.Pool)
		return 2
	}
	for k, v := range spec.Env {
		os.Setenv(k, v)
	}
	if os.Getenv(debugEnv) != "" {
		slog.SetLogLoggerLevel(slog.LevelDebug)
	}
	// A pool that drains installs its handler before opening; the others
	// keep Go's default, so SIGTERM ends them at once, as it does an
	// application that never wired it.
	term := make(chan os.Signal, 1)
	if kind.drains {
		signal.Notify(term, syscall.SIGTERM)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	db, err := kind.open(ctx, spec)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}

	var outMu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	send := func(m message) {
		outMu.Lock()
		defer outMu.Unlock()
		out.Encode(m)
	}
	var inflight sync.WaitGroup // bursts under way
	go func() {
		<-term
		ctx, cancel := context.WithTimeout(context.Background(), spec.Grace-spec.Grace/5)
		db.Shutdown(ctx)
		cancel()
		inflight.Wait()
		os.Exit(0)
	}()

	send(message{Ready: true})
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			fmt.Fprintln(os.Stderr, "command:", err)
			return 2
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			burst(db, c, func(r request) { send(message{Req: r}) })
			send(message{Done: true})
		}()
	}
	inflight.Wait()
	db.Close()
	return 0
}

// burst runs c's queries concurrently and reports each as it finishes.
func burst(db db, c command, report func(request)) {
	var wg sync.WaitGroup
	for range c.N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), c.Deadline)
			defer cancel()
			start := time.Now()
			err := db.Exec(ctx, "SELECT pg_sleep($1)", c.Query.Seconds())
			r := request{Start: start.UnixNano(), Lat: time.Since(start)}
			if err != nil {
				r.Err = err.Error()
			}
			report(r)
		}()
	}
	wg.Wait()
}

// instance is the parent's handle on a child.
type instance struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *json.Decoder
	stderr *lockedBuffer
	exited chan struct{}
}

// lockedBuffer keeps the child's stderr for error messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<10 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startInstance starts a child and waits until its pool is open.
func startInstance(spec instanceSpec) (*instance, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), instanceEnv+"="+string(js))
	// The child dies with us (SIGKILL) if this process is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	inst := &instance{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = inst.stderr
	if os.Getenv(debugEnv) != "" {
		cmd.Stderr = io.MultiWriter(os.Stderr, inst.stderr)
	}
	if inst.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	inst.out = json.NewDecoder(outPipe)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { cmd.Wait(); close(inst.exited) }()
	var m message
	if err := inst.out.Decode(&m); err != nil || !m.Ready {
		inst.kill()
		return nil, fmt.Errorf("instance of %s did not start: %s", spec.Pool, lastLine(inst.stderr.String()))
	}
	return inst, nil
}

// errExited stands for the requests an instance never answered.
var errExited = errors.New("the instance exited before answering")

// burst runs a burst in the child and returns its requests; those the
// child never answered (it was killed) count as failed.
func (i *instance) burst(c command) []request {
	if err := i.send(c); err != nil {
		return lost(c.N, err)
	}
	return i.collect(c.N)
}

func (i *instance) send(c command) error {
	js, _ := json.Marshal(c)
	_, err := fmt.Fprintf(i.in, "%s\n", js)
	return err
}

// collect reads n answers, or fewer and the end of the burst or of the child.
func (i *instance) collect(n int) []request {
	var reqs []request
	for {
		var m message
		if err := i.out.Decode(&m); err != nil {
			return append(reqs, lost(n-len(reqs), errExited)...)
		}
		if m.Done {
			return reqs
		}
		reqs = append(reqs, m.Req)
	}
}

func lost(n int, err error) []request {
	rs := make([]request, max(n, 0))
	for k := range rs {
		rs[k] = request{Start: time.Now().UnixNano(), Err: err.Error()}
	}
	return rs
}

// freeze stops the child for d, as a platform freezes an idle instance,
// and then until it holds turn; it calls atTurn, the child still frozen,
// and returns holding turn.
func (i *instance) freeze(d time.Duration, turn *sync.Mutex, atTurn func()) {
	i.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(d)
	turn.Lock()
	atTurn()
	i.cmd.Process.Signal(syscall.SIGCONT)
}

// stop lets the child close its pool and exit (end of stdin), killing it
// after grace.
func (i *instance) stop(grace time.Duration) {
	i.in.Close()
	i.cmd.Process.Signal(syscall.SIGCONT)
	i.wait(grace)
}

// wait waits up to grace for the child to exit, then kills it, as a
// platform kills an instance its grace period did not see out.
func (i *instance) wait(grace time.Duration) {
	select {
	case <-i.exited:
	case <-time.After(grace):
		i.kill()
	}
}

func (i *instance) kill() {
	i.cmd.Process.Kill()
	<-i.exited
}

func lastLine(s string) string {
	s = string(bytes.TrimSpace([]byte(s)))
	if k := bytes.LastIndexByte([]byte(s), '\n'); k >= 0 {
		s = s[k+1:]
	}
	if s == "" {
		return "no message"
	}
	return s
}
