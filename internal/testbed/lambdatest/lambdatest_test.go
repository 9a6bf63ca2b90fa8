package lambdatest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/runpool/runpool/internal/testbed/lambdatest"
)

// TestMain doubles as the function under test: started with
// LAMBDATEST_FUNCTION set, the test binary runs aws-lambda-go's runtime
// client with a handler that echoes its deadline.
func TestMain(m *testing.M) {
	switch os.Getenv("LAMBDATEST_FUNCTION") {
	case "":
		os.Exit(m.Run())
	case "sigterm":
		lambda.StartWithOptions(echo, lambda.WithEnableSIGTERM(func() {
			fmt.Println("SIGTERM")
			os.Exit(0)
		}))
	default:
		lambda.Start(echo)
	}
}

func echo(ctx context.Context, in map[string]any) (map[string]any, error) {
	dl, _ := ctx.Deadline()
	return map[string]any{"in": in, "deadline_ms": dl.UnixMilli()}, nil
}

func start(t *testing.T, opts lambdatest.Options) *lambdatest.API {
	t.Helper()
	api, err := lambdatest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	return api
}

func post(t *testing.T, url, name, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Lambda-Extension-Name", name)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(res.Body)
	return res, b.String()
}

// Lambda's rules for internal extensions: INVOKE only, and registration
// closes when the runtime first asks for an invocation.
func TestRegistrationRules(t *testing.T) {
	api := start(t, lambdatest.Options{})
	reg := "http://" + api.Addr() + "/2020-01-01/extension/register"
	if res, body := post(t, reg, "x", `{"events":["SHUTDOWN"]}`); res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Extension.InvalidEventType") {
		t.Fatalf("SHUTDOWN for an internal extension: %d %s", res.StatusCode, body)
	}
	res, _ := post(t, reg, "x", `{"events":[]}`)
	if res.StatusCode != http.StatusOK || res.Header.Get("Lambda-Extension-Identifier") == "" {
		t.Fatalf("register: %d, id %q", res.StatusCode, res.Header.Get("Lambda-Extension-Identifier"))
	}
	// The runtime's first next closes registration.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api.Addr()+"/2018-06-01/runtime/invocation/next", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	if err := api.AwaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if res, body := post(t, reg, "late", `{"events":[]}`); res.StatusCode != http.StatusForbidden || !strings.Contains(body, "Extension.RegistrationClosed") {
		t.Fatalf("late registration: %d %s", res.StatusCode, body)
	}
}

// procState is the process's state letter in /proc (T: stopped).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "?"
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return "?"
}

// aws-lambda-go's own client, with its SIGTERM extension, through
// invocations, a freeze and a shutdown.
func TestFunctionLifecycle(t *testing.T) {
	api := start(t, lambdatest.Options{})
	var out bytes.Buffer
	// A race-enabled binary sleeps a second at exit unless told not to.
	f, err := api.StartFunction(os.Args[0], append(os.Environ(), "LAMBDATEST_FUNCTION=sigterm", "GORACE=atexit_sleep_ms=0"), &out)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	invoke := func(n int) {
		t.Helper()
		before := time.Now()
		r, err := api.Invoke(ctx, []byte(fmt.Sprintf(`{"n":%d}`, n)), 3*time.Second)
		if err != nil || r.Err {
			t.Fatalf("invocation %d: %v %s", n, err, r.Body)
		}
		var got struct {
			In         map[string]float64 `json:"in"`
			DeadlineMS int64              `json:"deadline_ms"`
		}
		if err := json.Unmarshal(r.Body, &got); err != nil || got.In["n"] != float64(n) {
			t.Fatalf("answer %s: %v", r.Body, err)
		}
		if dl := time.UnixMilli(got.DeadlineMS).Sub(before); dl < 2*time.Second || dl > 4*time.Second {
			t.Fatalf("the handler's deadline was %v away, want about 3s", dl)
		}
	}
	invoke(1)
	frozen := make(chan string, 1)
	go func() {
		time.Sleep(150 * time.Millisecond)
		frozen <- procState(f.Pid())
	}()
	if err := f.Freeze(ctx, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if s := <-frozen; s != "T" {
		t.Fatalf("process state during the freeze %q, want T (stopped)", s)
	}
	invoke(2)
	if got := api.Extensions(); len(got) != 1 || got[0] != "GoLangEnableSIGTERM" {
		t.Fatalf("extensions %v", got)
	}
	s := f.Shutdown(lambdatest.ShutdownWindow)
	if !s.SIGTERM || s.Killed || !strings.Contains(out.String(), "SIGTERM") {
		t.Fatalf("shutdown %+v; output %s", s, out.String())
	}
}

// Without an extension, Lambda sends no SIGTERM: the process is killed.
func TestShutdownWithoutExtensionKills(t *testing.T) {
	api := start(t, lambdatest.Options{})
	f, err := api.StartFunction(os.Args[0], append(os.Environ(), "LAMBDATEST_FUNCTION=plain"), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := api.Invoke(ctx, []byte(`{}`), time.Second); err != nil {
		t.Fatal(err)
	}
	if s := f.Shutdown(lambdatest.ShutdownWindow); s.SIGTERM || !s.Killed {
		t.Fatalf("shutdown %+v, want SIGKILL without SIGTERM", s)
	}
}
