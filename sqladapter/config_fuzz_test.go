package sqladapter_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/sqladapter"
)

// fuzzMarker is in the planted password; it must never show.
const fuzzMarker = "Pa55w0rd"

// FuzzConfigFromEnv fills the environment a service reads (DATABASE_URL or
// the PG* variables, and a RUNPOOL_* one) from fuzzed values around a
// planted password (in PGPASSWORD, and in DATABASE_URL when it is set),
// then builds a Connector: nothing panics, no error and no description
// of the Config shows the password, and a pool setting that is accepted
// derives nothing out of bounds (adaptertest.CheckSettings).
//
//	go test -run '^$' -fuzz FuzzConfigFromEnv -fuzztime 2m ./sqladapter
func FuzzConfigFromEnv(f *testing.F) {
	for _, s := range []struct {
		url, host, port, opts, runpool string
	}{
		{"postgres://app:%s@db.internal:5432/app?sslmode=disable", "", "", "", "3"},
		{"", "db.internal", "5432", "disable", "8"},
		{"", "/cloudsql/p:r:i", "", "require", ""},
		{"host=db port=bad user=app password='%s'", "", "", "", "-1"},
		{"postgres://app:%s@[::1:5432/app", "", "", "", "x"},
		{"", "h1,h2", "5432,notaport", "verify-full", "0"},
		{"postgres://app:%s@db/app?pool_max_conns=4&target_session_attrs=any", "", "", "bogus", "1048577"},
		{"user=app password=%s host=db sslmode=bogus", "", "", "", ""},
		{"postgres://app:%s@db/app", "", "", "", "1ns"},
		{"postgres://app:%s@db/app", "", "", "", "off"},
		{"postgres://app:%s@db/app", "", "", "", "2562047h"},
		{"postgres://app:%s@db/app", "", "", "", "596h31m23.648s"},
	} {
		for v := range uint8(3) {
			f.Add(s.url, s.host, s.port, s.opts, v, s.runpool)
		}
	}
	f.Fuzz(func(t *testing.T, dbURL, host, port, sslmode string, which uint8, runpoolValue string) {
		pw := []string{"Fuzz-" + fuzzMarker, "it's " + fuzzMarker + `\`, "p@ss:" + fuzzMarker + "/x"}[int(which)%3]
		if strings.Count(dbURL+host+port+sslmode+runpoolValue, fuzzMarker) > 0 || strings.ContainsRune(dbURL, 0) ||
			strings.ContainsRune(host+port+sslmode+runpoolValue, 0) {
			t.Skip() // the marker must come from the planted password alone; NUL cannot be in the environment
		}
		// The password is planted only where it is a password: a mutation
		// that moved %s into the host may well see the host in an error.
		switch {
		case strings.Contains(dbURL, "password='%s'"):
			dbURL = strings.Replace(dbURL, "%s", strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw), 1)
		case strings.Contains(dbURL, ":%s@") || strings.Contains(dbURL, "password=%s"):
			dbURL = strings.Replace(dbURL, "%s", pw, 1)
		}
		t.Setenv("DATABASE_URL", dbURL)
		t.Setenv("PGPASSWORD", pw)
		t.Setenv("PGHOST", host)
		t.Setenv("PGPORT", port)
		t.Setenv("PGSSLMODE", sslmode)
		t.Setenv("PGUSER", "app")
		t.Setenv("PGDATABASE", "app")
		vars := runpool.EnvVars()
		t.Setenv(vars[int(which)%len(vars)].Name, runpoolValue)
		cfg, err := sqladapter.ConfigFromEnv()
		if err != nil {
			if s := err.Error() + fmt.Sprintf("%+v", err); strings.Contains(s, fuzzMarker) {
				t.Fatalf("DATABASE_URL=%q PGHOST=%q PGPORT=%q PGSSLMODE=%q: the error shows the password: %v", dbURL, host, port, sslmode, err)
			}
			return
		}
		if s := cfg.String(); strings.Contains(s, fuzzMarker) {
			t.Fatalf("DATABASE_URL=%q: String shows the password: %s", dbURL, s)
		}
		c, err := sqladapter.NewConnector(cfg) // opens no connection
		if err != nil {
			if strings.Contains(err.Error(), fuzzMarker) {
				t.Fatalf("DATABASE_URL=%q: NewConnector's error shows the password: %v", dbURL, err)
			}
			return
		}
		_ = c.Close()
		if err := adaptertest.CheckSettings(cfg.ConnConfig, cfg.Pool); err != nil {
			t.Fatalf("%s=%q: %v", vars[int(which)%len(vars)].Name, runpoolValue, err)
		}
	})
}
