package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/lambdatest"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// build compiles the example as it is deployed, into a directory the
// test removes.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bootstrap")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// output collects the function's log lines.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// function starts the example under the stand-in runtime, connecting as
// a fresh role through the NAT, and returns it with the role.
func function(t *testing.T, bin string, srv *pgtest.Server, nat *faultproxy.Proxy, opts lambdatest.Options) (*lambdatest.API, *lambdatest.Function, *output, string) {
	t.Helper()
	user := srv.CreateRole(t, -1)
	api, err := lambdatest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	out := &output{}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"DATABASE_URL=" + fmt.Sprintf("postgres://%s:pw@%s/%s?sslmode=disable", user, nat.Addr(), user),
		"RUNPOOL_MAX_INSTANCES=10",
	}
	f, err := api.StartFunction(bin, env, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Shutdown(0)
		if t.Failed() {
			t.Logf("the function's output:\n%s", out)
		}
	})
	return api, f, out, user
}

// invoke runs one invocation of the example and returns the session
// that served it.
func invoke(ctx context.Context, api *lambdatest.API, ms int) (int32, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := api.Invoke(ctx, []byte(fmt.Sprintf(`{"ms":%d}`, ms)), 5*time.Second)
	if err != nil {
		return 0, err
	}
	if r.Err {
		return 0, fmt.Errorf("the handler failed: %s", r.Body)
	}
	var resp Response
	if err := json.Unmarshal(r.Body, &resp); err != nil {
		return 0, fmt.Errorf("answer %q: %v", r.Body, err)
	}
	return resp.PID, nil
}

// backendsLeft polls the role's backends for a moment after the process
// exited: a session whose client said goodbye ends within milliseconds;
// one behind a forgotten flow stays until the server's own timeouts.
func backendsLeft(t *testing.T, srv *pgtest.Server, user string) int {
	t.Helper()
	n := srv.Backends(t, user)
	for end := time.Now().Add(time.Second); n > 0 && time.Now().Before(end); n = srv.Backends(t, user) {
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

// The must-show of Lambda's lifecycle: 100 invocations, the environment
// frozen between them (every tenth freeze past the NAT's idle timeout, so
// the NAT forgets the pool's flows), every one served; then, after a last
// freeze past the NAT's timeout, as an idle environment is shut down,
// SIGTERM drains the pool and the process exits within Lambda's window
// with no backend of its role left on the server. Both ways a NAT
// forgets: silently, and with a reset (an AWS NAT gateway's way).
func TestLambdaFreezesBehindNATThenShutdown(t *testing.T) {
	bin := build(t)
	for _, mode := range []faultproxy.Mode{faultproxy.Blackhole, faultproxy.Reset} {
		t.Run(mode.String(), func(t *testing.T) { freezesThenShutdown(t, bin, mode) })
	}
}

func freezesThenShutdown(t *testing.T, bin string, mode faultproxy.Mode) {
	const (
		invocations = 100
		natIdle     = time.Second
		long        = 1500 * time.Millisecond // past the NAT's idle timeout
		short       = 20 * time.Millisecond
	)
	srv := pgtest.Shared(t)
	nat, err := faultproxy.Start(faultproxy.Config{Target: srv.Addr(), Mode: mode, IdleTimeout: natIdle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nat.Close() })
	api, f, out, user := function(t, bin, srv, nat, lambdatest.Options{})
	ctx := context.Background()
	served, frozen := 0, time.Duration(0)
	pids := map[int32]bool{}
	start := time.Now()
	for i := range invocations {
		pid, err := invoke(ctx, api, i%3)
		if err != nil {
			t.Fatalf("invocation %d (after %v frozen in all): %v", i, frozen, err)
		}
		served++
		pids[pid] = true
		d := short
		if i%10 == 9 {
			d = long
		}
		if err := f.Freeze(ctx, d); err != nil {
			t.Fatal(err)
		}
		frozen += d
	}
	if got := api.Extensions(); len(got) != 1 {
		t.Fatalf("extensions registered: %v, want the example's one", got)
	}
	if nat.Dropped() == 0 {
		t.Fatal("the NAT forgot no flow: the scenario did not happen")
	}
	// The environment idles past the NAT's timeout before Lambda ends it.
	if err := f.Freeze(ctx, long); err != nil {
		t.Fatal(err)
	}
	s := f.Shutdown(lambdatest.ShutdownWindow)
	left := backendsLeft(t, srv, user)
	t.Logf("NAT %v: %d/%d invocations served in %v (%v frozen), %d server sessions used, the NAT forgot %d flows; "+
		"SIGTERM to exit %v (window %v), killed %v, exit %v; backends left %d",
		mode, served, invocations, time.Since(start).Round(time.Millisecond), frozen, len(pids), nat.Dropped(),
		s.Took.Round(time.Millisecond), lambdatest.ShutdownWindow, s.Killed, s.Err, left)
	if !s.SIGTERM || s.Killed || s.Err != nil {
		t.Fatalf("shutdown: SIGTERM %v, killed %v, exit %v", s.SIGTERM, s.Killed, s.Err)
	}
	if !strings.Contains(out.String(), "drained on SIGTERM") {
		t.Fatal("the function did not log its drain")
	}
	if left > 0 {
		t.Fatalf("%d backends of the function's role left on the server", left)
	}
}

// Without an extension (Lambda refused the registration) the function
// still serves, across a freeze past the NAT's timeout; no SIGTERM comes,
// and the stand-in kills it, as Lambda does.
func TestLambdaWithoutExtension(t *testing.T) {
	srv := pgtest.Shared(t)
	nat, err := faultproxy.Start(faultproxy.Config{Target: srv.Addr(), Mode: faultproxy.Blackhole, IdleTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nat.Close() })
	api, f, out, _ := function(t, build(t), srv, nat, lambdatest.Options{RefuseExtensions: true})
	ctx := context.Background()
	for i := range 5 {
		if _, err := invoke(ctx, api, 0); err != nil {
			t.Fatalf("invocation %d: %v", i, err)
		}
		d := 20 * time.Millisecond
		if i == 2 {
			d = 1500 * time.Millisecond
		}
		if err := f.Freeze(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(out.String(), "no Lambda extension") {
		t.Fatalf("the refusal was not logged")
	}
	if s := f.Shutdown(lambdatest.ShutdownWindow); s.SIGTERM || !s.Killed {
		t.Fatalf("shutdown without an extension: SIGTERM %v, killed %v", s.SIGTERM, s.Killed)
	}
}

// A query longer than the invocation's time ends with the invocation's
// deadline (less the margin kept to answer): the handler answers with the
// error before Lambda would time it out, nothing is left running on the
// server, and the next invocation is served.
func TestLambdaQueryUnderDeadline(t *testing.T) {
	srv := pgtest.Shared(t)
	nat, err := faultproxy.Start(faultproxy.Config{Target: srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nat.Close() })
	api, _, _, user := function(t, build(t), srv, nat, lambdatest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := invoke(ctx, api, 0); err != nil {
		t.Fatal(err)
	}
	const timeout = time.Second
	start := time.Now()
	r, err := api.Invoke(ctx, []byte(`{"ms":5000}`), timeout)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Err || !strings.Contains(string(r.Body), "deadline") {
		t.Fatalf("answer %s, want the deadline's error", r.Body)
	}
	if took >= timeout {
		t.Fatalf("answered after %v, not before the invocation's %v", took, timeout)
	}
	// The cancel request travels apart from the query: give it a moment.
	const active = "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state = 'active'"
	running := srv.QueryInt(t, active, user)
	for end := time.Now().Add(time.Second); running > 0 && time.Now().Before(end); running = srv.QueryInt(t, active, user) {
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("a 5 s query under a 1 s invocation answered after %v; %d still running on the server", took.Round(time.Millisecond), running)
	if running != 0 {
		t.Fatalf("%d queries of the role still running after the invocation answered", running)
	}
	if _, err := invoke(ctx, api, 0); err != nil {
		t.Fatalf("the next invocation: %v", err)
	}
}
