package lambdadrain_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/lambdatest"
	"github.com/runpool/runpool/lambdadrain"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// noExit is the Options.Exit of tests that send no SIGTERM.
func noExit(int) {}

func standIn(t *testing.T, opts lambdatest.Options) *lambdatest.API {
	t.Helper()
	api, err := lambdatest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	t.Setenv("AWS_LAMBDA_RUNTIME_API", api.Addr())
	return api
}

// The extension registers during Init and calls event/next, so Lambda
// hands the runtime its first invocation.
func TestStartRegistersAndCompletesInit(t *testing.T) {
	api := standIn(t, lambdatest.Options{})
	e, err := lambdadrain.Options{Logger: quiet, Exit: noExit}.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	if !e.Registered() {
		t.Fatal("not registered")
	}
	if got := api.Extensions(); len(got) != 1 || got[0] != lambdadrain.DefaultName {
		t.Fatalf("extensions %v, want [%s]", got, lambdadrain.DefaultName)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan string, 1)
	go func() { // the runtime's side, as aws-lambda-go asks
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api.Addr()+"/2018-06-01/runtime/invocation/next", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- err.Error()
			return
		}
		res.Body.Close()
		got <- res.Header.Get("Lambda-Runtime-Aws-Request-Id")
		// Answer it, so that Invoke returns.
		r2, err := http.Post("http://"+api.Addr()+"/2018-06-01/runtime/invocation/"+res.Header.Get("Lambda-Runtime-Aws-Request-Id")+"/response", "application/json", nil)
		if err == nil {
			r2.Body.Close()
		}
	}()
	if _, err := api.Invoke(ctx, []byte(`{}`), time.Second); err != nil {
		t.Fatalf("the first invocation was not handed out (Init incomplete?): %v", err)
	}
	if id := <-got; id == "" {
		t.Fatal("no request id")
	}
}

// A refused registration is an error the caller can log, and the
// extension is known not to be registered; the SIGTERM handler is there
// all the same.
func TestStartRefused(t *testing.T) {
	standIn(t, lambdatest.Options{RefuseExtensions: true})
	e, err := lambdadrain.Options{Logger: quiet, Exit: noExit}.Start()
	t.Cleanup(e.Stop)
	var re *lambdadrain.RegisterError
	if !errors.As(err, &re) || re.Status != http.StatusForbidden || re.Type != "Extension.RegistrationClosed" {
		t.Fatalf("err %v, want a 403 Extension.RegistrationClosed RegisterError", err)
	}
	if e.Registered() {
		t.Fatal("registered after a refusal")
	}
}

// A Runtime API that does not answer is a RegisterError too.
func TestStartNoAnswer(t *testing.T) {
	api := standIn(t, lambdatest.Options{})
	api.Close()
	e, err := lambdadrain.Options{Logger: quiet, Exit: noExit}.Start()
	t.Cleanup(e.Stop)
	var re *lambdadrain.RegisterError
	if !errors.As(err, &re) || re.Status != 0 {
		t.Fatalf("err %v, want a RegisterError without status", err)
	}
}

// Off Lambda nothing is registered and nothing fails.
func TestStartOffLambda(t *testing.T) {
	t.Setenv("AWS_LAMBDA_RUNTIME_API", "")
	e, err := lambdadrain.Options{Logger: quiet, Exit: noExit}.Start()
	t.Cleanup(e.Stop)
	if err != nil || e.Registered() {
		t.Fatalf("off Lambda: err %v, registered %v", err, e.Registered())
	}
}

// The budget is Lambda's 500 ms window less a fifth, unless
// RUNPOOL_DRAIN_TIMEOUT or Options.Timeout says otherwise.
func TestTimeout(t *testing.T) {
	t.Setenv("AWS_LAMBDA_RUNTIME_API", "")
	for _, c := range []struct {
		env  string
		opt  time.Duration
		want time.Duration
	}{
		{"", 0, 400 * time.Millisecond},
		{"300ms", 0, 300 * time.Millisecond},
		{"300ms", 250 * time.Millisecond, 250 * time.Millisecond},
	} {
		t.Setenv("RUNPOOL_DRAIN_TIMEOUT", c.env)
		e, _ := lambdadrain.Options{Logger: quiet, Exit: noExit, Timeout: c.opt}.Start()
		e.Stop()
		if e.Timeout() != c.want {
			t.Errorf("RUNPOOL_DRAIN_TIMEOUT=%q, Options.Timeout %v: budget %v, want %v", c.env, c.opt, e.Timeout(), c.want)
		}
	}
}

// fakePool records what the drain asked of it.
type fakePool struct {
	mu       sync.Mutex
	calls    []string
	deadline time.Duration // of Shutdown's ctx, from its call
	hang     bool          // Shutdown waits for ctx's end
}

func (p *fakePool) Ping(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, "ping")
	return nil
}

func (p *fakePool) Shutdown(ctx context.Context) (runpool.DrainReport, error) {
	p.mu.Lock()
	p.calls = append(p.calls, "shutdown")
	if d, ok := ctx.Deadline(); ok {
		p.deadline = time.Until(d)
	}
	p.mu.Unlock()
	if p.hang {
		<-ctx.Done()
		return runpool.DrainReport{}, ctx.Err()
	}
	return runpool.DrainReport{}, nil
}

// sigterm sends the test process SIGTERM and returns the drain's exit
// code and how long it took.
func sigterm(t *testing.T, timeout time.Duration, pools ...runpool.Drainer) (int, time.Duration) {
	t.Helper()
	t.Setenv("AWS_LAMBDA_RUNTIME_API", "")
	codes := make(chan int, 1)
	e, err := lambdadrain.Options{Logger: quiet, Timeout: timeout, Exit: func(c int) { codes <- c }}.Start(pools...)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-codes:
		e.Stop()
		return c, time.Since(start)
	case <-time.After(5 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	return 0, 0
}

// On SIGTERM every pool is pinged, then drained under the budget, and
// the process exits 0.
func TestSIGTERMDrains(t *testing.T) {
	a, b := &fakePool{}, &fakePool{}
	code, _ := sigterm(t, 300*time.Millisecond, a, b)
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	for _, p := range []*fakePool{a, b} {
		if len(p.calls) != 2 || p.calls[0] != "ping" || p.calls[1] != "shutdown" {
			t.Fatalf("calls %v, want [ping shutdown]", p.calls)
		}
		if p.deadline <= 0 || p.deadline > 300*time.Millisecond {
			t.Fatalf("the drain's deadline was %v away, want within the 300ms budget", p.deadline)
		}
	}
}

// A pool that cannot drain in time does not hold the process past the
// budget: it exits 1 when the budget ends, before Lambda's SIGKILL.
func TestSIGTERMDrainOverrun(t *testing.T) {
	code, took := sigterm(t, 200*time.Millisecond, &fakePool{hang: true})
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if took > lambdatest.ShutdownWindow {
		t.Fatalf("exit %v after SIGTERM, past Lambda's %v window", took, lambdatest.ShutdownWindow)
	}
}
