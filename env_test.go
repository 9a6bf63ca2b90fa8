package runpool

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func lookupFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfigFromEnvParsesEveryVariable(t *testing.T) {
	good := map[string]string{
		"RUNPOOL_POOL_NAME":                "orders",
		"RUNPOOL_MAX_CONNS":                "7",
		"RUNPOOL_MIN_CONNS":                "2",
		"RUNPOOL_MAX_CONCURRENT_DIALS":     "3",
		"RUNPOOL_DIAL_TIMEOUT":             "4s",
		"RUNPOOL_MAX_CONN_IDLE_TIME":       "40s",
		"RUNPOOL_MAX_CONN_LIFETIME":        "20m",
		"RUNPOOL_MAX_CONN_LIFETIME_JITTER": "2m",
		"RUNPOOL_MAINTAIN_INTERVAL":        "500ms",
		"RUNPOOL_PROBE_AFTER_IDLE":         "2s",
		"RUNPOOL_PROBE_TIMEOUT":            "300ms",
		"RUNPOOL_FREEZE_THRESHOLD":         "3s",
		"RUNPOOL_PATH_IDLE_TIMEOUT":        "4m",
		"RUNPOOL_TCP_KEEPALIVE_IDLE":       "10s",
		"RUNPOOL_TCP_KEEPALIVE_INTERVAL":   "2s",
		"RUNPOOL_TCP_KEEPALIVE_COUNT":      "4",
		"RUNPOOL_TCP_USER_TIMEOUT":         "15s",
		"RUNPOOL_BUDGET":                   "90",
		"RUNPOOL_MAX_INSTANCES":            "10",
		"RUNPOOL_RESERVE":                  "5",
		"RUNPOOL_PLATFORM":                 "CloudRun",
		"RUNPOOL_DRAIN_TIMEOUT":            "8s",
	}
	c, err := configFromLookup(Config{}, lookupFrom(good))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Name: "orders", MaxConns: 7, MinConns: 2, MaxConcurrentDials: 3, DialTimeout: 4 * time.Second,
		MaxConnIdleTime: 40 * time.Second, MaxConnLifetime: 20 * time.Minute, MaxConnLifetimeJitter: 2 * time.Minute,
		MaintainInterval: 500 * time.Millisecond, ProbeAfterIdle: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond,
		FreezeThreshold: 3 * time.Second, PathIdleTimeout: 4 * time.Minute,
		TCPKeepAliveIdle: 10 * time.Second, TCPKeepAliveInterval: 2 * time.Second, TCPKeepAliveCount: 4,
		TCPUserTimeout: 15 * time.Second, Budget: 90, MaxInstances: 10, Reserve: 5, Platform: "cloudrun",
		DrainTimeout: 8 * time.Second,
	}
	// Variables added later by other features get their own tests; this
	// one checks the ones listed above round-trip exactly.
	got := c
	got.Logger, got.MeterProvider = nil, nil
	if got.Name != want.Name || got.MaxConns != want.MaxConns || got.MinConns != want.MinConns ||
		got.MaxConcurrentDials != want.MaxConcurrentDials || got.DialTimeout != want.DialTimeout ||
		got.MaxConnIdleTime != want.MaxConnIdleTime || got.MaxConnLifetime != want.MaxConnLifetime ||
		got.MaxConnLifetimeJitter != want.MaxConnLifetimeJitter || got.MaintainInterval != want.MaintainInterval ||
		got.ProbeAfterIdle != want.ProbeAfterIdle || got.ProbeTimeout != want.ProbeTimeout ||
		got.FreezeThreshold != want.FreezeThreshold || got.PathIdleTimeout != want.PathIdleTimeout ||
		got.TCPKeepAliveIdle != want.TCPKeepAliveIdle || got.TCPKeepAliveInterval != want.TCPKeepAliveInterval ||
		got.TCPKeepAliveCount != want.TCPKeepAliveCount || got.TCPUserTimeout != want.TCPUserTimeout ||
		got.Budget != want.Budget || got.MaxInstances != want.MaxInstances || got.Reserve != want.Reserve ||
		got.Platform != want.Platform || got.DrainTimeout != want.DrainTimeout {
		t.Fatalf("ConfigFromEnv:\n got %+v\nwant %+v", got, want)
	}
}

// Every variable rejects garbage with an error that names it.
func TestConfigFromEnvRejectsBadValues(t *testing.T) {
	for _, ev := range EnvVars() {
		for _, bad := range []string{"abc", "-5", "-5s", "1.5x"} {
			if ev.Unit == "name" && ev.Name != "RUNPOOL_PLATFORM" {
				continue // free text
			}
			_, err := configFromLookup(Config{}, lookupFrom(map[string]string{ev.Name: bad}))
			if err == nil {
				if ev.Unit == "name" {
					t.Errorf("%s=%q accepted", ev.Name, bad)
				}
				continue
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Setting != ev.Name {
				t.Errorf("%s=%q: error %v does not name the variable", ev.Name, bad, err)
			}
			if !strings.Contains(err.Error(), ev.Name) || !strings.Contains(err.Error(), bad) {
				t.Errorf("%s=%q: message %q lacks the name or the value", ev.Name, bad, err)
			}
		}
	}
	// A duration given as a bare number is refused with the unit named.
	_, err := configFromLookup(Config{}, lookupFrom(map[string]string{"RUNPOOL_PROBE_TIMEOUT": "250"}))
	if err == nil || !strings.Contains(err.Error(), "250ms") {
		t.Errorf("bare number for a duration: %v", err)
	}
	_, err = configFromLookup(Config{}, lookupFrom(map[string]string{"RUNPOOL_MAX_CONNS": "0"}))
	if err == nil || !strings.Contains(err.Error(), "between 1 and") {
		t.Errorf("RUNPOOL_MAX_CONNS=0: %v", err)
	}
}

// Unset and empty variables leave the base (code) values alone.
func TestConfigFromEnvKeepsCodeValues(t *testing.T) {
	c, err := configFromLookup(Config{MaxConns: 9, Name: "code"}, lookupFrom(map[string]string{"RUNPOOL_MAX_CONNS": " "}))
	if err != nil || c.MaxConns != 9 || c.Name != "code" {
		t.Fatalf("got %+v, %v", c, err)
	}
}

// docs/configuration.md's table of variables has a row for every variable
// the code reads.
func TestConfigurationDocListsEveryVariable(t *testing.T) {
	doc, err := os.ReadFile("docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range EnvVars() {
		if !strings.Contains(string(doc), "\n| `"+ev.Name+"` |") {
			t.Errorf("docs/configuration.md has no row for %s", ev.Name)
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		cfg   Config
		field string
	}{
		{Config{MaxConns: -1}, "Config.MaxConns"},
		{Config{MaxConns: 2, MinConns: 3}, "Config.MinConns"},
		{Config{ProbeTimeout: -time.Second}, "Config.ProbeTimeout"},
		{Config{Budget: 5, Reserve: 5}, "Config.Reserve"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Setting != c.field {
			t.Errorf("%+v: got %v, want an error naming %s", c.cfg, err, c.field)
		}
	}
}

// RUNPOOL_SERVER_AWAY_TIMEOUT sets how long callers wait for a server
// that is away; "off" disables the wait.
func TestServerAwayTimeoutFromEnv(t *testing.T) {
	for v, want := range map[string]time.Duration{"1m": time.Minute, "off": -1} {
		c, err := configFromLookup(Config{}, lookupFrom(map[string]string{"RUNPOOL_SERVER_AWAY_TIMEOUT": v}))
		if err != nil || c.ServerAwayTimeout != want {
			t.Errorf("%s: ServerAwayTimeout %v, err %v; want %v", v, c.ServerAwayTimeout, err, want)
		}
	}
	if d := (Config{}).withDefaults().ServerAwayTimeout; d != 30*time.Second {
		t.Errorf("default ServerAwayTimeout %v, want 30s", d)
	}
}

// "off" is how the environment disables what a negative Config value
// disables: the server's idle_session_timeout.
func TestServerIdleSessionTimeoutOff(t *testing.T) {
	c, err := configFromLookup(Config{}, lookupFrom(map[string]string{"RUNPOOL_SERVER_IDLE_SESSION_TIMEOUT": "off"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerIdleSessionTimeout >= 0 {
		t.Fatalf("ServerIdleSessionTimeout %v, want negative (disabled)", c.ServerIdleSessionTimeout)
	}
	_, err = configFromLookup(Config{}, lookupFrom(map[string]string{"RUNPOOL_SERVER_IDLE_SESSION_TIMEOUT": "-5s"}))
	if err == nil || !strings.Contains(err.Error(), "RUNPOOL_SERVER_IDLE_SESSION_TIMEOUT") || !strings.Contains(err.Error(), "or off") {
		t.Fatalf("-5s: error %v, want one naming the variable and off", err)
	}
}

// Every platform RUNPOOL_PLATFORM accepts has its entry in the table
// DetectPlatform reads, and no entry is unreachable.
func TestPlatformNamesMatchTheTable(t *testing.T) {
	if len(platformNames) != len(platforms) {
		t.Errorf("%d names accepted, %d platforms described", len(platformNames), len(platforms))
	}
	for _, name := range platformNames {
		if p, ok := platforms[name]; !ok || p.Name != name {
			t.Errorf("%q: described as %+v", name, p)
		}
		if got := DetectPlatform(lookupFrom(map[string]string{"RUNPOOL_PLATFORM": name})); got.Name != name {
			t.Errorf("RUNPOOL_PLATFORM=%s detected as %q", name, got.Name)
		}
	}
}
