package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	pgtest.Main(m)
}

// quiet keeps the pools' logs out of the test output.
var quiet = slog.New(slog.DiscardHandler)

// burstResult is what a burst of concurrent queries saw.
type burstResult struct {
	OK, Failed int
	P50, P99   time.Duration
	Errors     []string
}

func (r burstResult) String() string {
	return fmt.Sprintf("%d/%d ok, p50 %v, p99 %v", r.OK, r.OK+r.Failed, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))
}

// burst runs n concurrent `SELECT pg_sleep(query)`, each with its own
// deadline, as a request handler would.
func burst(db adaptertest.DB, n int, query, deadline time.Duration) burstResult {
	var mu sync.Mutex
	var r burstResult
	var lat []time.Duration
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			err := db.Exec(ctx, "SELECT pg_sleep($1)", query.Seconds())
			d := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, d)
			if err != nil {
				r.Failed++
				r.Errors = append(r.Errors, err.Error())
			} else {
				r.OK++
			}
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	r.P50 = lat[len(lat)/2]
	r.P99 = lat[(len(lat)*99+99)/100-1]
	return r
}

// freshDial measures one connection set-up plus the query, the yardstick
// for how fast a recovered request can be.
func freshDial(t *testing.T, a adaptertest.Adapter, dsn string, query time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	db, err := a.Open(ctx, dsn, runpool.Config{MaxConns: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Exec(ctx, "SELECT pg_sleep($1)", query.Seconds()); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

func open(t *testing.T, a adaptertest.Adapter, dsn string, cfg runpool.Config) adaptertest.DB {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := a.Open(ctx, dsn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// The child-process instance: a pool in another process that the test can
// freeze with SIGSTOP, as a platform freezes an idle instance.

const childEnv = "RUNPOOL_CONFORMANCE_CHILD"

type childCmd struct {
	N        int
	Query    time.Duration
	Deadline time.Duration
}

// runChild opens a pool of the adapter named in the environment and runs
// one burst for each command line on stdin, answering with a JSON line.
func runChild() int {
	var adapter adaptertest.Adapter
	for _, a := range adaptertest.Adapters {
		if a.Name == os.Getenv(childEnv) {
			adapter = a
		}
	}
	if adapter.Open == nil {
		fmt.Fprintln(os.Stderr, "unknown adapter", os.Getenv(childEnv))
		return 2
	}
	var cfg runpool.Config
	if err := json.Unmarshal([]byte(os.Getenv(childEnv+"_CONFIG")), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg.Logger = quiet
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	db, err := adapter.Open(ctx, os.Getenv(childEnv+"_DSN"), cfg)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	fmt.Println(`{"ready":true}`)
	for in.Scan() {
		var c childCmd
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		out.Encode(burst(db, c.N, c.Query, c.Deadline))
	}
	return 0
}

// instance is a child process holding a pool.
type instance struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
}

func startInstance(t *testing.T, adapter, dsn string, cfg runpool.Config) *instance {
	t.Helper()
	js, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+adapter, childEnv+"_DSN="+dsn, childEnv+"_CONFIG="+string(js))
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inst := &instance{cmd: cmd, in: in, out: json.NewDecoder(outPipe)}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Signal(syscall.SIGCONT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	var ready struct{ Ready bool }
	if err := inst.out.Decode(&ready); err != nil || !ready.Ready {
		t.Fatalf("instance did not start: %v", err)
	}
	return inst
}

func (i *instance) burst(t *testing.T, n int, query, deadline time.Duration) burstResult {
	t.Helper()
	i.start(t, n, query, deadline)
	var r burstResult
	if err := i.out.Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// start has the instance begin a burst whose result nobody reads.
func (i *instance) start(t *testing.T, n int, query, deadline time.Duration) {
	t.Helper()
	js, _ := json.Marshal(childCmd{N: n, Query: query, Deadline: deadline})
	if _, err := fmt.Fprintf(i.in, "%s\n", js); err != nil {
		t.Fatal(err)
	}
}

// freeze stops the instance for d; past natIdle into it, during runs
// (the NAT forgetting the flows the instance left idle).
func (i *instance) freeze(t *testing.T, d time.Duration, during func()) {
	t.Helper()
	if err := i.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(natIdle)
	during()
	time.Sleep(d - natIdle)
	if err := i.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
