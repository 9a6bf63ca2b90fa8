package runpool

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestPoolerFromEnv(t *testing.T) {
	c, err := configFromLookup(Config{}, lookupFrom(map[string]string{"RUNPOOL_POOLER": "PgBouncer"}))
	if err != nil || c.Pooler != PoolerPgBouncer || !c.BehindPooler() {
		t.Fatalf("RUNPOOL_POOLER=PgBouncer: %+v, %v", c.Pooler, err)
	}
	_, err = configFromLookup(Config{}, lookupFrom(map[string]string{"RUNPOOL_POOLER": "odyssey"}))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Setting != "RUNPOOL_POOLER" {
		t.Fatalf("RUNPOOL_POOLER=odyssey: got %v, want a ConfigError naming the variable", err)
	}
	if err := (Config{Pooler: "odyssey"}).Validate(); !errors.As(err, &ce) || ce.Setting != "Config.Pooler" {
		t.Fatalf("Config.Pooler=odyssey: got %v", err)
	}
}

// When an instance's share falls below 2, the start-up check says to put
// a pooler in front, with the settings; not when the share is enough, nor
// when a pooler is already in front.
func TestBudgetCallsForPooler(t *testing.T) {
	plan := func(cfg Config) string {
		var buf bytes.Buffer
		cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
		_, events, err := resolve(cfg, Platform{Name: "none"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		logEvents(cfg.Logger, events)
		return buf.String()
	}
	// 97 usable connections, 50 instances: 55 with the margin, 1 each.
	log := plan(Config{Budget: 100, Reserve: 3, MaxInstances: 50})
	for _, want := range []string{"each instance gets 1 connection", "RUNPOOL_POOLER=pgbouncer", "pool_mode=transaction", "default_pool_size=97", "max_client_conn>=220"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if log := plan(Config{Budget: 100, Reserve: 3, MaxInstances: 10}); strings.Contains(log, "pooler") {
		t.Errorf("8 per instance drew pooler advice:\n%s", log)
	}
	if log := plan(Config{Budget: 100, Reserve: 3, MaxInstances: 50, Pooler: PoolerPgBouncer}); strings.Contains(log, "Put a transaction-mode pooler") {
		t.Errorf("advice to add a pooler while behind one:\n%s", log)
	}
}

// A budget that cannot give each instance one connection is an error whose
// message gives the pooler settings too.
func TestBudgetBelowInstancesNamesPoolerSettings(t *testing.T) {
	_, err := deriveLimits(20, 2, 40)
	if err == nil {
		t.Fatal("20 connections for 44 instances: no error")
	}
	for _, want := range []string{"pool_mode=transaction", "default_pool_size=18", "RUNPOOL_POOLER=pgbouncer", "max_client_conn"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}
