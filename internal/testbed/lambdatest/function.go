package lambdatest

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"syscall"
	"time"
)

// ShutdownWindow is Lambda's shutdown window for a runtime with an
// internal extension: from SIGTERM to SIGKILL.
const ShutdownWindow = 500 * time.Millisecond

// ErrNotRunning is returned by the process calls once the function exited.
var ErrNotRunning = errors.New("lambdatest: the function's process is not running")

// Function is a function's process, started with AWS_LAMBDA_RUNTIME_API
// pointing at the stand-in.
type Function struct {
	api    *API
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	at     time.Time     // when it exited; read after exited closes
	err    error         // cmd.Wait's; read after exited closes
}

// StartFunction starts the binary at path with env (which should not set
// AWS_LAMBDA_RUNTIME_API: the stand-in's address is added) and its
// output sent to out.
func (a *API) StartFunction(path string, env []string, out io.Writer) (*Function, error) {
	cmd := exec.Command(path)
	cmd.Env = append(env, "AWS_LAMBDA_RUNTIME_API="+a.Addr(), "AWS_LAMBDA_FUNCTION_NAME="+a.opts.FunctionName)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	f := &Function{api: a, cmd: cmd, exited: make(chan struct{})}
	go func() {
		f.err = cmd.Wait()
		f.at = time.Now()
		close(f.exited)
	}()
	return f, nil
}

// Pid is the process's id.
func (f *Function) Pid() int { return f.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (f *Function) Exited() <-chan struct{} { return f.exited }

// Freeze waits until the runtime asks for its next invocation, then
// freezes the process for d (SIGSTOP, SIGCONT), as Lambda freezes an
// execution environment between invocations.
func (f *Function) Freeze(ctx context.Context, d time.Duration) error {
	if err := f.api.AwaitIdle(ctx); err != nil {
		return err
	}
	if err := f.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return f.signal(syscall.SIGCONT)
}

// Stopped is what a shutdown did.
type Stopped struct {
	SIGTERM bool          // sent, because an extension was registered
	Killed  bool          // SIGKILL was needed
	Took    time.Duration // from SIGTERM (or SIGKILL) to the process's exit
	Err     error         // the process's exit status, as cmd.Wait reports it
}

// Shutdown ends the environment as Lambda does: thawed, then SIGTERM when
// an extension is registered and SIGKILL if the process has not exited
// within window; SIGKILL at once when no extension is registered.
func (f *Function) Shutdown(window time.Duration) Stopped {
	var s Stopped
	f.signal(syscall.SIGCONT)
	start := time.Now()
	if len(f.api.Extensions()) > 0 {
		s.SIGTERM = true
		f.signal(syscall.SIGTERM)
		t := time.NewTimer(window)
		defer t.Stop()
		select {
		case <-f.exited:
		case <-t.C:
		}
	}
	select {
	case <-f.exited:
	default:
		s.Killed = true
		f.signal(syscall.SIGKILL)
		<-f.exited
	}
	s.Took = f.at.Sub(start)
	s.Err = f.err
	return s
}

// signal sends sig unless the process already exited.
func (f *Function) signal(sig syscall.Signal) error {
	select {
	case <-f.exited:
		return ErrNotRunning
	default:
	}
	return f.cmd.Process.Signal(sig)
}
