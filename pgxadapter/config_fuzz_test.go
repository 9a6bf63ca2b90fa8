package pgxadapter_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/pgxadapter"
)

// fuzzMarker is in every password the fuzz targets plant: it must never
// show in an error or a description of a Config.
const fuzzMarker = "Pa55w0rd"

// fuzzPasswords are planted passwords, plain and with the characters that
// need quoting in a URL or a key=value string.
var fuzzPasswords = []string{
	"Fuzz-" + fuzzMarker + "-Zq7",
	"Fuzz " + fuzzMarker + " Zq7",
	"p@ss:" + fuzzMarker + "/x?y#z",
	`it's ` + fuzzMarker + `\`,
	fuzzMarker,
}

// FuzzParseConfig builds connection strings, URL and key=value, around a
// planted password from fuzzed host, port, database and options:
// ParseConfig never panics, and neither its error nor the Config's
// String shows the password.
//
//	go test -run '^$' -fuzz FuzzParseConfig -fuzztime 2m ./pgxadapter
func FuzzParseConfig(f *testing.F) {
	for _, s := range []struct{ host, port, db, opts string }{
		{"db.internal", "5432", "app", "sslmode=disable"},
		{"127.0.0.1", "notaport", "app", ""},
		{"[::1]", "6432", "app", "sslmode=bogus"},
		{"/cloudsql/proj:region:inst", "", "app", "connect_timeout=5"},
		{"h1,h2", "5432,5433", "app", "target_session_attrs=read-write"},
		{"db", "99999", "", "application_name=svc&pool_max_conns=4"},
		{"db", "-1", "app", "statement_cache_capacity=x"},
		{"", "", "", "sslrootcert=/nonexistent&sslmode=verify-full"},
		{"db%zz", "5432", "a%2", "a=%"},
		{"db", "5432", "app", "password=other"},
	} {
		for form := range uint8(8) {
			f.Add(form, s.host, s.port, s.db, s.opts)
		}
	}
	f.Fuzz(func(t *testing.T, form uint8, host, port, db, opts string) {
		pw := fuzzPasswords[int(form>>1)%len(fuzzPasswords)]
		dsn := buildDSN(form&1 == 0, pw, host, port, db, opts)
		if strings.Count(dsn, fuzzMarker) != 1 {
			t.Skip() // the fuzzed parts carry the marker themselves
		}
		cfg, err := pgxadapter.ParseConfig(dsn)
		if err != nil {
			if s := err.Error(); strings.Contains(s, fuzzMarker) {
				t.Fatalf("ParseConfig(%q): the error shows the password: %s", dsn, s)
			}
			if s := fmt.Sprintf("%+v", err); strings.Contains(s, fuzzMarker) {
				t.Fatalf("ParseConfig(%q): the error (%%+v) shows the password: %s", dsn, s)
			}
			if !strings.Contains(err.Error(), "connection string") {
				t.Fatalf("ParseConfig(%q): the error does not name the setting: %v", dsn, err)
			}
			return
		}
		if s := cfg.String(); strings.Contains(s, fuzzMarker) {
			t.Fatalf("ParseConfig(%q): String shows the password: %s", dsn, s)
		}
	})
}

// FuzzPoolSettings sets one RUNPOOL_* variable to a fuzzed value:
// ParseConfig either refuses it naming the variable, or accepts a value
// from which nothing out of bounds is derived (a keepalive beyond the
// kernel's limit, a TCP_USER_TIMEOUT truncated to 32 bits:
// adaptertest.CheckSettings).
//
//	go test -run '^$' -fuzz FuzzPoolSettings -fuzztime 2m ./pgxadapter
func FuzzPoolSettings(f *testing.F) {
	for i := range runpool.EnvVars() {
		for _, v := range []string{"0", "1", "1ns", "off", "250ms", "1h", "4294967297", "2562047h", "32768s", "596h31m23.648s"} {
			f.Add(uint8(i), v)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		if strings.ContainsRune(value, 0) {
			t.Skip() // NUL cannot be in the environment
		}
		vars := runpool.EnvVars()
		name := vars[int(which)%len(vars)].Name
		t.Setenv(name, value)
		cfg, err := pgxadapter.ParseConfig("postgres://app:pw@db.internal:5432/app")
		if err != nil {
			var ce *runpool.ConfigError
			if !errors.As(err, &ce) || ce.Setting != name {
				t.Fatalf("%s=%q: %v does not name the variable", name, value, err)
			}
			return
		}
		if err := adaptertest.CheckSettings(cfg.ConnConfig, cfg.Pool); err != nil {
			t.Fatalf("%s=%q: %v", name, value, err)
		}
	})
}

// buildDSN assembles a URL or a key=value connection string holding pw.
func buildDSN(asURL bool, pw, host, port, db, opts string) string {
	if asURL {
		hp := host
		if port != "" {
			hp += ":" + port
		}
		s := "postgres://app:" + url.PathEscape(pw) + "@" + hp + "/" + db
		if opts != "" {
			s += "?" + opts
		}
		return s
	}
	q := func(v string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	}
	s := "user=app password=" + q(pw)
	if host != "" {
		s += " host=" + q(host)
	}
	if port != "" {
		s += " port=" + q(port)
	}
	if db != "" {
		s += " dbname=" + q(db)
	}
	if opts != "" {
		s += " " + opts
	}
	return s
}
