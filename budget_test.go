package runpool

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The worked example of docs/budget.md.
func TestDeriveLimitsWorkedExample(t *testing.T) {
	lim, err := deriveLimits(100, 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	if lim.instances != 11 || lim.perInstance != 8 {
		t.Fatalf("got %+v, want 11 instances with the surge margin and 8 connections each", lim)
	}
	if total := int(lim.perInstance) * lim.instances; total > 100-5 {
		t.Fatalf("%d connections during a surge exceed the budget less the reserve", total)
	}
}

func TestDeriveLimitsNeverBelowOne(t *testing.T) {
	for _, c := range []struct{ budget, reserve, instances int }{{2, 0, 1}, {11, 0, 10}, {1000, 100, 3}} {
		lim, err := deriveLimits(c.budget, c.reserve, c.instances)
		if err != nil || lim.perInstance < 1 {
			t.Errorf("%+v: %+v %v", c, lim, err)
		}
	}
}

// A budget below the instance count names the variables and the fix.
func TestBudgetBelowInstances(t *testing.T) {
	_, err := deriveLimits(5, 0, 10)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Setting != "RUNPOOL_BUDGET" {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"RUNPOOL_BUDGET=\"5\"", "RUNPOOL_MAX_INSTANCES=10", "11 instances", "pooler"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}

func TestServerAllowance(t *testing.T) {
	s := ServerLimits{MaxConnections: 100, SuperuserReserved: 3, Reserved: 2, RoleLimit: -1, DatabaseLimit: -1}
	if n := s.Allowance(); n != 95 {
		t.Fatalf("allowance %d, want 95", n)
	}
	s.RoleLimit = 20
	if n := s.Allowance(); n != 20 {
		t.Fatalf("with a role limit: %d, want 20", n)
	}
	s.DatabaseLimit = 10
	if n := s.Allowance(); n != 10 {
		t.Fatalf("with a database limit: %d, want 10", n)
	}
}

func TestDetectPlatform(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "none"},
		{map[string]string{"K_SERVICE": "api", "K_REVISION": "api-1", "PORT": "8080"}, "cloudrun"},
		{map[string]string{"CLOUD_RUN_JOB": "etl"}, "cloudrun-job"},
		{map[string]string{"AWS_LAMBDA_FUNCTION_NAME": "f"}, "lambda"},
		{map[string]string{"CONTAINER_APP_NAME": "a"}, "azure-container-apps"},
		{map[string]string{"FLY_APP_NAME": "a", "FLY_MACHINE_ID": "m"}, "fly"},
		{map[string]string{"K_SERVICE": "api", "RUNPOOL_PLATFORM": "knative"}, "knative"},
	}
	for _, c := range cases {
		if got := DetectPlatform(lookupFrom(c.env)); got.Name != c.want {
			t.Errorf("%v: %q, want %q", c.env, got.Name, c.want)
		}
	}
	if p := DetectPlatform(lookupFrom(map[string]string{"K_SERVICE": "api"})); p.Grace != 10*time.Second {
		t.Errorf("Cloud Run grace %v, want 10s", p.Grace)
	}
	if p := DetectPlatform(lookupFrom(map[string]string{"AWS_LAMBDA_FUNCTION_NAME": "f"})); p.Concurrency != 1 {
		t.Errorf("Lambda concurrency %d, want 1", p.Concurrency)
	}
}

func TestBackoffIsJitteredAndBounded(t *testing.T) {
	seen := map[time.Duration]bool{}
	for i := range 50 {
		d := backoff(i % 10)
		if d <= 0 || d > 500*time.Millisecond {
			t.Fatalf("backoff(%d) = %v", i%10, d)
		}
		seen[d] = true
	}
	if len(seen) < 40 {
		t.Fatalf("only %d distinct pauses in 50: not jittered", len(seen))
	}
}
