package runpool

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// Degenerate values are refused with the variable, the value and the
// range named, not accepted to break the pool quietly (a maintainer tick
// of 1ns spinning a core, every probe failing, every connection expiring
// at once through an overflowed expiry, a TCP_USER_TIMEOUT truncated to
// 32 bits).
func TestDegenerateSettingsAreRefused(t *testing.T) {
	for _, c := range []struct{ env, value, want string }{
		{"RUNPOOL_MAINTAIN_INTERVAL", "1ns", "between 1ms and 24h"},
		{"RUNPOOL_PROBE_TIMEOUT", "1ns", "between 5ms and 1m"},
		{"RUNPOOL_MAX_CONN_LIFETIME", "2562047h", "between 10ms and 720h"},
		{"RUNPOOL_TCP_USER_TIMEOUT", "1000h", "between 200ms and 1h, or off"},
		{"RUNPOOL_TCP_KEEPALIVE_COUNT", "1000", "between 1 and 127"},
		{"RUNPOOL_MAX_CONNS", "9223372036854775807", "between 1 and 262143"},
		{"RUNPOOL_MAX_CONNS", "4294967297", "between 1 and 262143"}, // int32(v) would be 1
		{"RUNPOOL_SERVER_IDLE_SESSION_TIMEOUT", "600h", "or off"},
	} {
		_, err := configFromLookup(Config{}, lookupFrom(map[string]string{c.env: c.value}))
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Setting != c.env {
			t.Errorf("%s=%s: got %v, want an error naming the variable", c.env, c.value, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.value) || !strings.Contains(msg, c.want) {
			t.Errorf("%s=%s: message %q lacks the value or the range %q", c.env, c.value, msg, c.want)
		}
	}
	for _, c := range []struct {
		cfg   Config
		field string
		want  string
	}{
		{Config{MaintainInterval: time.Nanosecond}, "Config.MaintainInterval", "between 1ms and 24h"},
		{Config{ProbeTimeout: time.Nanosecond}, "Config.ProbeTimeout", "between 5ms and 1m"},
		{Config{MaxConnLifetime: math.MaxInt64}, "Config.MaxConnLifetime", "between 10ms and 720h"},
		{Config{MaxConnLifetimeJitter: math.MaxInt64}, "Config.MaxConnLifetimeJitter", "or negative to disable"},
		{Config{TCPUserTimeout: 1 << 42 * time.Millisecond}, "Config.TCPUserTimeout", "between 200ms and 1h"},
		{Config{TCPKeepAliveIdle: 100 * time.Hour}, "Config.TCPKeepAliveIdle", "between 1s and 9h6m7s"},
		{Config{DialTimeout: -time.Second}, "Config.DialTimeout", "between 10ms and 10m"},
	} {
		err := c.cfg.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Setting != c.field {
			t.Errorf("%s: got %v, want an error naming the field", c.field, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: message %q lacks the range %q", c.field, err, c.want)
		}
	}
}

// The table covers every numeric variable, and each limit names a
// variable the environment is read for.
func TestEveryNumberHasALimit(t *testing.T) {
	for _, ev := range envVars {
		if ev.set == nil && limitFor(ev.Name) == nil {
			t.Errorf("%s has neither a parser nor a limit", ev.Name)
		}
		if ev.set != nil && limitFor(ev.Name) != nil {
			t.Errorf("%s has both a parser and a limit", ev.Name)
		}
	}
	for _, l := range limits {
		if !l.within(l.min) || l.min > l.max || (l.min < 1 && l.min != 0) {
			t.Errorf("%s: range %s", l.field, l.allowed())
		}
		found := false
		for _, ev := range envVars {
			found = found || ev.Name == l.env
		}
		if !found {
			t.Errorf("%s: variable %s is not read", l.field, l.env)
		}
	}
}

// docs/configuration.md states every range as the errors do.
func TestDocsStateEveryRange(t *testing.T) {
	doc, err := os.ReadFile("docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range limits {
		row := "| `" + l.env + "` | `" + l.field + "` | " + l.allowed() + " |"
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/configuration.md lacks the row %q", row)
		}
	}
}

// checkDerived fails t when d, a Config with defaults applied that
// Validate accepted, yields a value out of bounds: a field outside its
// range, an expiry that overflows, a socket option or server setting
// that does not fit its type.
func checkDerived(t *testing.T, what string, d Config) {
	t.Helper()
	for _, l := range limits {
		if v := l.get(&d); v != 0 && !(v < 0 && l.off) && !l.within(v) {
			t.Fatalf("%s: %s = %d after defaults, outside %s", what, l.field, v, l.allowed())
		}
	}
	now := nanotime()
	longest := int64(d.MaxConnLifetime) + max(int64(d.MaxConnLifetimeJitter), 0)
	if longest <= 0 || now+longest < now {
		t.Fatalf("%s: expiry overflows: lifetime %v + jitter %v", what, d.MaxConnLifetime, d.MaxConnLifetimeJitter)
	}
	if d.MaintainInterval < time.Millisecond || d.ProbeTimeout < minProbeTimeout {
		t.Fatalf("%s: maintainer interval %v, probe timeout %v", what, d.MaintainInterval, d.ProbeTimeout)
	}
	if ms := d.TCPUserTimeout / time.Millisecond; d.TCPUserTimeout > 0 && (ms < 1 || ms > math.MaxInt32) {
		t.Fatalf("%s: TCP_USER_TIMEOUT %v is not a 32-bit count of milliseconds", what, d.TCPUserTimeout)
	}
	// The adapters put these in socket options and session settings
	// (internal/pgxconn, checked end to end by adaptertest.CheckSettings).
	if d.TCPKeepAliveIdle > maxKernelKeepAlive || d.TCPKeepAliveInterval > maxKernelKeepAlive || d.TCPKeepAliveCount > 127 {
		t.Fatalf("%s: kernel keepalive %v/%v/%d beyond Linux's limits", what, d.TCPKeepAliveIdle, d.TCPKeepAliveInterval, d.TCPKeepAliveCount)
	}
	if s := (d.ServerKeepAliveIdle + time.Second - 1) / time.Second; d.ServerKeepAliveIdle > 0 && s > math.MaxInt32 {
		t.Fatalf("%s: server keepalive %v is not a 32-bit count of seconds", what, d.ServerKeepAliveIdle)
	}
	if ms := d.ServerIdleSessionTimeout.Milliseconds(); d.ServerIdleSessionTimeout > 0 && (ms < 1 || ms > math.MaxInt32) {
		t.Fatalf("%s: idle_session_timeout %v is not a 32-bit count of milliseconds", what, d.ServerIdleSessionTimeout)
	}
}
