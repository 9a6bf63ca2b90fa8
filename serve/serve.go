// Package serve runs an HTTP server until the platform stops the
// process, then shuts it down and drains runpool's pools in the order
// that loses no work:
//
//	err := serve.HTTP(ctx, srv, 0, pool) // 0: RUNPOOL_DRAIN_TIMEOUT or the platform's
//
// Without it, call the pool's Shutdown on SIGTERM after the server's.
package serve

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/runpool/runpool"
)

// HTTP runs srv (ListenAndServe) until ctx ends or the process gets
// SIGTERM or SIGINT, then shuts down within timeout, in the order that
// loses no work: srv.Shutdown closes the listeners (a new request is
// refused as http.Server refuses it) and waits for requests in flight,
// which may still use the pools; then each pool drains. If requests are
// still running when the time is nearly up, the pools cancel their
// queries on the server, the handlers see the error and answer, and srv
// is closed. A zero timeout means RUNPOOL_DRAIN_TIMEOUT when set, else the
// detected platform's drain budget (Cloud Run: 8s of its 10s grace).
//
// HTTP never swallows a signal: it stops listening for them as soon
// as the first arrives, so a second SIGTERM or SIGINT ends the process
// the ordinary way. It returns nil after a clean shutdown, the error that
// stopped srv otherwise.
func HTTP(ctx context.Context, srv *http.Server, timeout time.Duration, pools ...runpool.Drainer) error {
	if timeout <= 0 {
		timeout = runpool.DetectPlatform(os.LookupEnv).DrainTimeout()
		if c, err := runpool.ConfigFromEnv(runpool.Config{}); err == nil && c.DrainTimeout > 0 {
			timeout = c.DrainTimeout
		}
	}
	sigCtx, stopSignals := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stopSignals()

	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	select {
	case err := <-served:
		return err // could not listen, or closed by someone else
	case <-sigCtx.Done():
	}
	stopSignals()

	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	// Leave the pools time to cancel what still runs and the handlers time
	// to answer with the error.
	srvCtx, srvCancel := context.WithDeadline(ctx, deadline.Add(-timeout/4))
	srvErr := srv.Shutdown(srvCtx)
	srvCancel()

	var errs []error
	for _, p := range pools {
		if _, err := p.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if srvErr != nil {
		// Requests outlived the budget: their queries were cancelled by
		// the drain; give their answers a moment, then close the rest.
		waitCtx, waitCancel := context.WithTimeout(context.Background(), time.Until(deadline))
		srvErr = srv.Shutdown(waitCtx)
		waitCancel()
		if srvErr != nil {
			srv.Close()
			errs = append(errs, srvErr)
		}
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
