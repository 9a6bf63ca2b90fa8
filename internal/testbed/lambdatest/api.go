// Package lambdatest stands in for AWS Lambda on loopback, for tests that
// drive a function's real binary through Lambda's lifecycle: the Runtime
// API (next invocation, response, error), the Extensions API (register,
// event/next), the freeze of the whole process between invocations
// (SIGSTOP and SIGCONT, as Lambda freezes the execution environment) and
// the shutdown (SIGTERM, the shutdown window, then SIGKILL).
//
// What it keeps of Lambda's contract: an internal extension may register
// only before the runtime's first request for an invocation (later it is
// refused with Extension.RegistrationClosed); the first invocation is
// handed out only once every registered extension has called event/next;
// an internal extension receives no SHUTDOWN event, so its event/next
// never returns; SIGTERM is sent only when an extension is registered,
// and the environment is frozen only while the runtime waits for its next
// invocation.
package lambdatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configures the stand-in.
type Options struct {
	// RefuseExtensions answers every registration with 403
	// Extension.RegistrationClosed, as Lambda answers one made too late.
	RefuseExtensions bool
	// FunctionName is reported to extensions and in the invoked ARN.
	FunctionName string
}

// Result is what the runtime answered to one invocation.
type Result struct {
	RequestID string
	Body      []byte // the response, or the error document
	Err       bool   // posted to /error rather than /response
}

// invocation is one event waiting for, or held by, the runtime.
type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	done     chan Result
}

// API is the stand-in Runtime and Extensions API.
type API struct {
	opts Options
	ln   net.Listener
	srv  *http.Server

	queue chan *invocation

	mu          sync.Mutex // guards what follows
	initDone    bool       // the runtime asked for its first invocation
	extensions  map[string]string
	ready       map[string]bool // extensions that called event/next
	waiting     bool            // the runtime waits in invocation/next
	held        map[string]*invocation
	initErr     []byte
	stateChange chan struct{} // closed and replaced on every change above
}

// Start serves the stand-in on 127.0.0.1; Close stops it.
func Start(opts Options) (*API, error) {
	if opts.FunctionName == "" {
		opts.FunctionName = "runpool-test"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &API{
		opts:        opts,
		ln:          ln,
		queue:       make(chan *invocation),
		extensions:  make(map[string]string),
		ready:       make(map[string]bool),
		held:        make(map[string]*invocation),
		stateChange: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", a.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", a.answer(false))
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", a.answer(true))
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", a.initError)
	mux.HandleFunc("POST /2020-01-01/extension/register", a.register)
	mux.HandleFunc("GET /2020-01-01/extension/event/next", a.eventNext)
	a.srv = &http.Server{Handler: mux}
	go a.srv.Serve(ln)
	return a, nil
}

// Addr is the value for AWS_LAMBDA_RUNTIME_API.
func (a *API) Addr() string { return a.ln.Addr().String() }

// Close stops serving; calls still open (the extensions' event/next)
// are cut.
func (a *API) Close() error { return a.srv.Close() }

// Extensions is the names of the extensions registered so far.
func (a *API) Extensions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var names []string
	for _, n := range a.extensions {
		names = append(names, n)
	}
	return names
}

// InitError is the document the runtime posted to init/error, if any.
func (a *API) InitError() []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.initErr
}

// changed wakes whoever waits for the state; a.mu must be held.
func (a *API) changed() {
	close(a.stateChange)
	a.stateChange = make(chan struct{})
}

// await waits until cond holds (checked under a.mu) or ctx ends.
func (a *API) await(ctx context.Context, cond func() bool) error {
	for {
		a.mu.Lock()
		ok, ch := cond(), a.stateChange
		a.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Invoke hands the runtime one event with the given timeout and waits for
// its answer, or ctx's end.
func (a *API) Invoke(ctx context.Context, payload []byte, timeout time.Duration) (Result, error) {
	inv := &invocation{id: newID(), payload: payload, deadline: time.Now().Add(timeout), done: make(chan Result, 1)}
	select {
	case a.queue <- inv:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("the runtime did not ask for the invocation: %w", ctx.Err())
	}
	select {
	case r := <-inv.done:
		return r, nil
	case <-ctx.Done():
		return Result{}, fmt.Errorf("invocation %s: no answer: %w", inv.id, ctx.Err())
	}
}

// AwaitIdle waits until the runtime waits for its next invocation, the
// moment Lambda freezes the environment.
func (a *API) AwaitIdle(ctx context.Context) error {
	return a.await(ctx, func() bool { return a.waiting })
}

func (a *API) next(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.initDone = true
	a.waiting = true
	a.changed()
	a.mu.Unlock()
	served := false
	defer func() { // when the runtime gave up waiting
		if !served {
			a.mu.Lock()
			a.waiting = false
			a.changed()
			a.mu.Unlock()
		}
	}()
	// Init ends when every registered extension has called event/next.
	if err := a.await(r.Context(), func() bool { return len(a.ready) == len(a.extensions) }); err != nil {
		return
	}
	var inv *invocation
	select {
	case inv = <-a.queue:
	case <-r.Context().Done():
		return
	}
	// The runtime is busy from here: no freeze until it asks again.
	a.mu.Lock()
	a.held[inv.id] = inv
	a.waiting = false
	a.changed()
	a.mu.Unlock()
	served = true
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:"+a.opts.FunctionName)
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
	h.Set("Content-Type", "application/json")
	w.Write(inv.payload)
}

func (a *API) answer(isErr bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		inv := a.held[id]
		delete(a.held, id)
		a.mu.Unlock()
		if inv == nil {
			writeError(w, http.StatusBadRequest, "InvalidRequestID", "unknown request id "+id)
			return
		}
		inv.done <- Result{RequestID: id, Body: body, Err: isErr}
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"status":"OK"}`)
	}
}

func (a *API) initError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.initErr = body
	a.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"OK"}`)
}

func (a *API) register(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get("Lambda-Extension-Name")
	var body struct {
		Events []string `json:"events"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestFormat", err.Error())
		return
	}
	for _, ev := range body.Events {
		// An internal extension may subscribe to INVOKE only.
		if ev != "INVOKE" {
			writeError(w, http.StatusBadRequest, "Extension.InvalidEventType", "internal extensions cannot register for "+ev)
			return
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case name == "":
		writeError(w, http.StatusBadRequest, "Extension.MissingHeader", "Lambda-Extension-Name is required")
		return
	case a.opts.RefuseExtensions || a.initDone:
		writeError(w, http.StatusForbidden, "Extension.RegistrationClosed", "registration is closed")
		return
	}
	id := newID()
	a.extensions[id] = name
	a.changed()
	w.Header().Set("Lambda-Extension-Identifier", id)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{
		"functionName": a.opts.FunctionName, "functionVersion": "$LATEST", "handler": "bootstrap",
	})
}

func (a *API) eventNext(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("Lambda-Extension-Identifier")
	a.mu.Lock()
	_, ok := a.extensions[id]
	if ok {
		a.ready[id] = true
		a.changed()
	}
	a.mu.Unlock()
	if !ok {
		writeError(w, http.StatusForbidden, "Extension.UnknownExtensionIdentifier", "unknown extension "+id)
		return
	}
	// No event for an extension that subscribed to none, and an internal
	// extension never gets SHUTDOWN: block until the API closes.
	<-r.Context().Done()
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"errorType": typ, "errorMessage": msg})
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	s := hex.EncodeToString(b)
	return strings.Join([]string{s[:8], s[8:12], s[12:16], s[16:20], s[20:]}, "-")
}
