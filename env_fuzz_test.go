package runpool

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// fuzzPassword is planted in DATABASE_URL and PGPASSWORD, which
// configFromLookup must never read, let alone echo.
const fuzzPassword = "Fuzz-Pa55w0rd-Zq7"

// FuzzConfigFromEnv feeds arbitrary values to the RUNPOOL_* variables,
// one at a time or all at once: parsing and validating never panics, a
// refused value is a *ConfigError naming the variable, no error shows
// the password the environment holds elsewhere, and an accepted value
// derives nothing out of bounds (checkDerived: an expiry that overflows,
// a socket option truncated to its type).
//
//	go test -run '^$' -fuzz FuzzConfigFromEnv -fuzztime 2m .
func FuzzConfigFromEnv(f *testing.F) {
	for i, ev := range envVars {
		for _, v := range []string{ev.Default, "0", "1", "-1", "250ms", "30s", "4m", "1048576", "1048577",
			"9223372036854775807", "-9223372036854775808", "1e9", "2562047h47m16.854775807s", "cloudrun",
			"1ns", "off", "4294967297", "721h", "32768s", "596h31m23.647s", "596h31m23.648s",
			"PGBOUNCER", " warn ", "", "\x00", "💥", "postgres://u:" + fuzzPassword + "@h/db"} {
			f.Add(uint8(i), v, false)
		}
	}
	f.Add(uint8(0), "3", true)
	f.Add(uint8(0), "5s", true)
	f.Fuzz(func(t *testing.T, which uint8, value string, all bool) {
		env := map[string]string{
			"DATABASE_URL": "postgres://app:" + fuzzPassword + "@db.internal:5432/app",
			"PGPASSWORD":   fuzzPassword,
		}
		target := envVars[int(which)%len(envVars)].Name
		for _, ev := range envVars {
			if all || ev.Name == target {
				env[ev.Name] = value
			}
		}
		c, err := configFromLookup(Config{}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("%s=%q: error %T is not a *ConfigError: %v", target, value, err, err)
			}
			if _, ok := env[ce.Setting]; !ok || !strings.HasPrefix(ce.Setting, "RUNPOOL_") {
				t.Fatalf("%s=%q: error names %q, not a variable that was set: %v", target, value, ce.Setting, err)
			}
			if !strings.Contains(err.Error(), ce.Setting) {
				t.Fatalf("%s=%q: message %q lacks the variable's name", target, value, err)
			}
			assertNoPassword(t, target, value, err.Error(), fmt.Sprintf("%+v", err))
			return
		}
		// What parsed must validate without panicking, and a refusal
		// names a Config field.
		if err := c.Validate(); err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.HasPrefix(ce.Setting, "Config.") {
				t.Fatalf("%s=%q: Validate: %v does not name a Config field", target, value, err)
			}
			assertNoPassword(t, target, value, err.Error())
			return
		}
		d := c.withDefaults()
		checkDerived(t, target+"="+value, d)
		if d.MaxInstances > 0 && d.Budget > 0 {
			if _, err := deriveLimits(d.Budget, d.Reserve, d.MaxInstances); err != nil {
				assertNoPassword(t, target, value, err.Error())
			}
		}
	})
}

// assertNoPassword fails if any text shows fuzzPassword while the fuzzed
// value itself did not carry it (a value is echoed in its own error).
func assertNoPassword(t *testing.T, name, value string, texts ...string) {
	t.Helper()
	if strings.Contains(value, fuzzPassword) {
		return
	}
	for _, s := range texts {
		if strings.Contains(s, fuzzPassword) {
			t.Fatalf("%s=%q: the password shows in %q", name, value, s)
		}
	}
}

// FuzzConfigValidate sets numeric Config fields in code to arbitrary
// values: Validate never panics, a refusal names a Config field, and what
// it accepts derives nothing out of bounds (checkDerived).
//
//	go test -run '^$' -fuzz FuzzConfigValidate -fuzztime 2m .
func FuzzConfigValidate(f *testing.F) {
	for i, l := range limits {
		for _, v := range []int64{0, 1, -1, l.min, l.max, l.min - 1, l.max + 1, math.MaxInt64, math.MinInt64, 1 << 32} {
			f.Add(uint8(i), v, uint8(i+1), l.max)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, v int64, other uint8, w int64) {
		var c Config
		a, b := &limits[int(which)%len(limits)], &limits[int(other)%len(limits)]
		a.set(&c, v)
		b.set(&c, w)
		what := fmt.Sprintf("%s=%d %s=%d", a.field, a.get(&c), b.field, b.get(&c))
		if err := c.Validate(); err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.HasPrefix(ce.Setting, "Config.") {
				t.Fatalf("%s: Validate: %v does not name a Config field", what, err)
			}
			return
		}
		checkDerived(t, what, c.withDefaults())
	})
}
