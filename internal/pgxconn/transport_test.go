package pgxconn

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// TransportOf tells a server reached over a network without verified
// TLS from one that is local or verified, for every sslmode.
func TestTransportOf(t *testing.T) {
	for _, k := range []string{"PGSSLMODE", "PGSSLROOTCERT", "PGSSLNEGOTIATION", "PGHOST", "PGPORT"} {
		t.Setenv(k, "")
	}
	network := map[string]Transport{
		"":                                   MaybePlaintext, // pgx's default: prefer
		"sslmode=disable":                    Plaintext,
		"sslmode=allow":                      MaybePlaintext,
		"sslmode=prefer":                     MaybePlaintext,
		"sslmode=require":                    Unverified,
		"sslmode=verify-ca":                  Verified,
		"sslmode=verify-full":                Verified,
		"sslmode=require sslrootcert=system": Verified, // libpq: a root certificate makes require verify
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost", "/var/run/postgresql", "10.0.0.5", "db.example.com"} {
		for opts, want := range network {
			if isLocal(host) {
				want = Local
			}
			cc, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=5432 user=app password=Secr3t dbname=app %s", host, opts))
			if err != nil {
				t.Fatalf("host=%s %s: %v", host, opts, err)
			}
			got, addr := TransportOf(&cc.Config)
			if got != want {
				t.Errorf("host=%s %s: %v, want %v", host, opts, got, want)
			}
			if want > Verified && !strings.Contains(addr, host) {
				t.Errorf("host=%s %s: names %q", host, opts, addr)
			}
		}
	}
	// Several hosts: the weakest one that is reached over a network.
	for dsn, want := range map[string]Transport{
		"host=127.0.0.1,db.example.com sslmode=prefer":             MaybePlaintext,
		"host=db1.example.com,db2.example.com sslmode=verify-full": Verified,
		"host=/tmp,localhost sslmode=disable":                      Local,
	} {
		cc, err := pgx.ParseConfig(dsn + " user=app")
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := TransportOf(&cc.Config); got != want {
			t.Errorf("%s: %v, want %v", dsn, got, want)
		}
	}
}

// The warning says how to fix it and never shows the password; the
// Cloud SQL connector, which does TLS itself, draws none.
func TestWarnTransport(t *testing.T) {
	t.Setenv("PGSSLMODE", "")
	cc, err := pgx.ParseConfig("postgres://app:Secr3t-pw@db.example.com:5432/app")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	pool := runpool.Config{Name: "orders", Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	warnTransport(&cc.Config, pool, true)
	if buf.Len() != 0 {
		t.Fatalf("warned with the Cloud SQL connector: %s", buf.String())
	}
	warnTransport(&cc.Config, pool, false)
	out := buf.String()
	if strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, "sslmode=verify-full") ||
		!strings.Contains(out, "db.example.com:5432") || !strings.Contains(out, "pool=orders") {
		t.Fatalf("warning: %s", out)
	}
	if strings.Contains(out, "Secr3t") {
		t.Fatalf("the warning shows the password: %s", out)
	}
}
