package serve_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/serve"
)

// record notes what happened, in order.
type record struct {
	mu     sync.Mutex
	events []string
}

func (r *record) note(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *record) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// drainer notes when it is asked to drain, and with what deadline.
type drainer struct {
	name     string
	rec      *record
	err      error
	deadline time.Time
}

func (d *drainer) Shutdown(ctx context.Context) (runpool.DrainReport, error) {
	d.deadline, _ = ctx.Deadline()
	d.rec.note(d.name)
	return runpool.DrainReport{}, d.err
}

// freeAddr returns a local address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// When ctx ends, the server stops taking requests and finishes those in
// flight, then each pool drains in turn within the timeout; a clean
// shutdown returns nil.
func TestHTTPFinishesRequestsThenDrains(t *testing.T) {
	rec := &record{}
	addr := freeAddr(t)
	began := make(chan struct{})
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(began)
		time.Sleep(200 * time.Millisecond)
		rec.note("request")
	})}
	a, b := &drainer{name: "a", rec: rec}, &drainer{name: "b", rec: rec}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- serve.HTTP(ctx, srv, 3*time.Second, a, b) }()
	answered := make(chan error, 1)
	go func() {
		for {
			resp, err := http.Get("http://" + addr)
			if err == nil {
				resp.Body.Close()
			}
			if err == nil || time.Since(start) > 5*time.Second {
				answered <- err
				return
			}
			time.Sleep(10 * time.Millisecond) // not listening yet
		}
	}()
	select {
	case <-began:
	case err := <-answered:
		t.Fatalf("the request did not reach the handler: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("HTTP: %v", err)
	}
	if err := <-answered; err != nil {
		t.Fatalf("the request in flight: %v", err)
	}
	if got := rec.seen(); len(got) != 3 || got[0] != "request" || got[1] != "a" || got[2] != "b" {
		t.Fatalf("order %v, want [request a b]", got)
	}
	if d := a.deadline.Sub(start); d < 2*time.Second || d > 4*time.Second {
		t.Errorf("the drain's deadline is %v after the start, want about 3s", d)
	}
}

// A zero timeout is RUNPOOL_DRAIN_TIMEOUT when set.
func TestHTTPTimeoutFromEnv(t *testing.T) {
	t.Setenv("RUNPOOL_DRAIN_TIMEOUT", "5s")
	d := &drainer{name: "pool", rec: &record{}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := serve.HTTP(ctx, &http.Server{Addr: freeAddr(t)}, 0, d); err != nil {
		t.Fatalf("HTTP: %v", err)
	}
	if got := d.deadline.Sub(start); got < 4*time.Second || got > 6*time.Second {
		t.Errorf("the drain's deadline is %v after the start, want about 5s", got)
	}
}

// A pool's drain error is returned; a server that cannot listen is
// returned at once, with no pool drained.
func TestHTTPErrors(t *testing.T) {
	failed := errors.New("drain failed")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := &drainer{name: "pool", rec: &record{}, err: failed}
	if err := serve.HTTP(ctx, &http.Server{Addr: freeAddr(t)}, time.Second, d); !errors.Is(err, failed) {
		t.Errorf("HTTP with a failing drain: %v, want %v", err, failed)
	}

	d = &drainer{name: "pool", rec: &record{}}
	bad := &http.Server{Addr: "127.0.0.1:not-a-port"}
	if err := serve.HTTP(context.Background(), bad, time.Second, d); err == nil {
		t.Error("HTTP on an address it cannot listen on: nil error")
	}
	if got := d.rec.seen(); len(got) != 0 {
		t.Errorf("drained %v after the server failed to listen", got)
	}
}
