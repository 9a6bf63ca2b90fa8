package lambdadrain

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/runpool/runpool"
)

// DefaultName is the extension's name when Options.Name is empty.
const DefaultName = "runpool-drain"

// Options adjusts Start. The zero value suits a function.
type Options struct {
	// Name is the extension's name (Lambda-Extension-Name); DefaultName
	// when empty.
	Name string
	// Timeout is the drain's budget from SIGTERM; when zero,
	// RUNPOOL_DRAIN_TIMEOUT if set, else Lambda's (400 ms of its 500 ms
	// shutdown window).
	Timeout time.Duration
	// Logger receives the registration and the drain's outcome;
	// slog.Default() when nil.
	Logger *slog.Logger
	// Exit ends the process after the drain; os.Exit when nil.
	Exit func(code int)
}

// Extension is a registered (or attempted) drain on SIGTERM.
type Extension struct {
	id      string
	timeout time.Duration
	pools   []runpool.Drainer
	log     *slog.Logger
	exit    func(int)

	sigs chan os.Signal
	stop chan struct{}
	once sync.Once
	done chan struct{} // closed when the drain (if any) has finished
}

// Start registers the internal extension when AWS_LAMBDA_RUNTIME_API is
// set, and from then on drains pools on SIGTERM and exits the process
// with status 0 (1 when a pool could not drain in time). Call it once in
// main, after opening the pools and before lambda.Start: Lambda accepts a
// registration only before the runtime's first request for an
// invocation.
//
// The process exits once the pools have drained: other work due at
// SIGTERM (flushing telemetry, say) needs a SIGTERM handler of its own
// that finishes within the same window. The SIGTERM handler is installed
// whatever the registration's outcome. A non-nil error is a *RegisterError: the function still works, but on
// Lambda no SIGTERM will come (see the package documentation for what
// happens to the server's sessions then).
func Start(pools ...runpool.Drainer) (*Extension, error) {
	return Options{}.Start(pools...)
}

// Start is the package's Start with these options.
func (o Options) Start(pools ...runpool.Drainer) (*Extension, error) {
	e := &Extension{
		timeout: o.budget(),
		pools:   pools,
		log:     o.Logger,
		exit:    o.Exit,
		sigs:    make(chan os.Signal, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.exit == nil {
		e.exit = os.Exit
	}
	signal.Notify(e.sigs, syscall.SIGTERM)
	go e.watch()

	addr := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if addr == "" {
		return e, nil
	}
	name := o.Name
	if name == "" {
		name = DefaultName
	}
	c := apiClient()
	id, err := register(c, addr, name)
	if err != nil {
		e.log.Warn("runpool: no Lambda extension: the pool will not drain at shutdown", "err", err)
		return e, err
	}
	e.id = id
	go awaitEvents(c, addr, id, func(err error) {
		e.log.Debug("runpool: the extension's event/next ended", "err", err)
	})
	e.log.Debug("runpool: Lambda extension registered", "name", name, "drain_timeout", e.timeout)
	return e, nil
}

// budget is the drain's time from SIGTERM.
func (o Options) budget() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	if c, err := runpool.ConfigFromEnv(runpool.Config{}); err == nil && c.DrainTimeout > 0 {
		return c.DrainTimeout
	}
	return lambda.DrainTimeout()
}

// lambda is the platform as runpool describes it, whatever the
// environment says: the shutdown window is Lambda's.
var lambda = runpool.DetectPlatform(func(k string) (string, bool) {
	if k == "RUNPOOL_PLATFORM" {
		return "lambda", true
	}
	return "", false
})

// Registered reports whether Lambda accepted the extension, that is,
// whether SIGTERM will come before the environment ends.
func (e *Extension) Registered() bool { return e.id != "" }

// Timeout is the drain's budget from SIGTERM.
func (e *Extension) Timeout() time.Duration { return e.timeout }

// Stop stops watching for SIGTERM, for a caller that drains by other
// means. It does not unregister the extension (Lambda has no call for
// that) and returns once a drain already under way has finished.
func (e *Extension) Stop() {
	e.once.Do(func() { close(e.stop) })
	<-e.done
}

// watch waits for SIGTERM, drains, and exits.
func (e *Extension) watch() {
	defer close(e.done)
	select {
	case <-e.stop:
		signal.Stop(e.sigs)
		return
	case <-e.sigs:
	}
	// A second SIGTERM ends the process the ordinary way.
	signal.Stop(e.sigs)
	code := 0
	if !e.drain() {
		code = 1
	}
	e.exit(code)
}

// pinger is a pool that can prove a connection live: *pgxadapter.Pool.
type pinger interface {
	Ping(ctx context.Context) error
}

// drain drains every pool at once within the budget and reports whether
// all of them finished. A pool that can ping is pinged first, within half
// the budget: SIGTERM comes to an environment that sat frozen, often past
// its path's idle timeout, and the drain ends the sessions the pool gave
// up as dead (orphans) only through a live connection. The ping probes a
// stale connection, gives it up as an orphan, and leaves a fresh one
// idle, so the drain ends the orphans through it and closes it cleanly,
// rather than sending its goodbyes into a flow the path forgot.
func (e *Extension) drain() bool {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	errs := make([]error, len(e.pools))
	var wg sync.WaitGroup
	for i, p := range e.pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if pp, ok := p.(pinger); ok {
				pctx, cancel := context.WithDeadline(ctx, start.Add(e.timeout/2))
				_ = pp.Ping(pctx) // a failure leaves the drain to do what it can
				cancel()
			}
			_, errs[i] = p.Shutdown(ctx)
		}()
	}
	wg.Wait()
	ok := true
	for _, err := range errs {
		if err != nil {
			ok = false
			e.log.Warn("runpool: drain on SIGTERM did not finish", "err", err)
		}
	}
	e.log.Info("runpool: drained on SIGTERM", "pools", len(e.pools), "took", time.Since(start), "budget", e.timeout)
	return ok
}
