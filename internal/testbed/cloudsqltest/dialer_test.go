package cloudsqltest_test

import (
	"context"
	"maps"
	"syscall"
	"testing"
	"time"

	"github.com/runpool/runpool/internal/cloudsqlwire"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/internal/testbed/cloudsqltest"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
)

// RUNPOOL_CLOUDSQL_IP_TYPE picks the address cloudsqlconn dials, and
// RUNPOOL_CLOUDSQL_IAM_AUTHN makes it ask for a certificate carrying the
// login token. (The stand-in does not log in with the token: PostgreSQL
// still checks the role's password.)
func TestCloudSQLIPTypeAndIAM(t *testing.T) {
	srv := pgtest.Shared(t)
	cases := []struct {
		ip, iam, host string
	}{
		{"", "false", cloudsqltest.PublicIP},
		{"private", "false", cloudsqltest.PrivateIP},
		{"psc", "false", cloudsqltest.PSCName},
		{"public", "true", cloudsqltest.PublicIP},
	}
	for _, c := range cases {
		t.Run("ip="+c.ip+"/iam="+c.iam, func(t *testing.T) {
			user := srv.CreateRole(t, -1)
			inst := start(t, srv, cloudsqltest.Options{}, nil)
			cloudEnv(t, inst, user)
			t.Setenv("RUNPOOL_CLOUDSQL_IP_TYPE", c.ip)
			t.Setenv("RUNPOOL_CLOUDSQL_IAM_AUTHN", c.iam)
			d := openDB(t, adapters[0])
			if _, err := d.QueryInt(ctxFor(t, 5*time.Second), "SELECT 1"); err != nil {
				t.Fatal(err)
			}
			for _, h := range []string{cloudsqltest.PublicIP, cloudsqltest.PrivateIP, cloudsqltest.PSCName} {
				if n := inst.Dialled(h); (h == c.host) != (n > 0) {
					t.Errorf("%d dials to %s", n, h)
				}
			}
			if iam := inst.IAMCerts() > 0; iam != (c.iam == "true") {
				t.Errorf("%d of %d certificates requested with a login token", inst.IAMCerts(), inst.CertsIssued())
			}
		})
	}
}

// The socket under cloudsqlconn's TLS carries runpool's keepalive (15 s
// idle, 5 s interval, 3 probes) and TCP_USER_TIMEOUT, not cloudsqlconn's
// 30 s keepalive.
func TestCloudSQLKeepAlive(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	inst := start(t, srv, cloudsqltest.Options{}, nil)
	cloudEnv(t, inst, user)
	p, err := pgxadapter.NewFromEnv(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := p.Acquire(ctxFor(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	sc, ok := c.Conn().PgConn().Conn().(syscall.Conn)
	if !ok {
		t.Fatalf("%T does not reach its socket", c.Conn().PgConn().Conn())
	}
	got, err := adaptertest.SocketOptions(sc)
	want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 15, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3, "TCP_USER_TIMEOUT": 20000}
	if err != nil || !maps.Equal(got, want) {
		t.Errorf("socket options %v (%v), want %v", got, err, want)
	}
}

// Every pool of the process shares one Dialer. Shutdown lets the query in
// flight finish before the pool gives its share back, and the Dialer is
// closed only when the last pool has drained; the next pool gets a new one.
func TestCloudSQLDialerSharedAndClosedLast(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	inst := start(t, srv, cloudsqltest.Options{}, nil)
	cloudEnv(t, inst, user)
	var dbs []db
	for _, a := range append(adapters, adapters[0]) {
		dbs = append(dbs, openDB(t, a))
	}
	if n := cloudsqlwire.Users(); n != 3 {
		t.Fatalf("%d pools share the Dialer, want 3", n)
	}
	p := dbs[0].(pgxDB)
	done := make(chan error, 1)
	go func() { done <- dbs[0].Exec(context.Background(), "SELECT pg_sleep(0.3)") }()
	time.Sleep(100 * time.Millisecond) // the query is on the server
	if _, err := p.Shutdown(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the query in flight during Shutdown: %v", err)
	}
	if n := cloudsqlwire.Users(); n != 2 {
		t.Fatalf("%d pools share the Dialer after one shut down, want 2", n)
	}
	if _, err := dbs[1].QueryInt(ctxFor(t, 5*time.Second), "SELECT 1"); err != nil {
		t.Fatalf("another pool after the first shut down: %v", err)
	}
	dbs[1].Close()
	dbs[2].Close()
	if n := cloudsqlwire.Users(); n != 0 {
		t.Fatalf("%d pools share the Dialer after all closed, want 0", n)
	}
	again := openDB(t, adapters[0])
	if _, err := again.QueryInt(ctxFor(t, 5*time.Second), "SELECT 1"); err != nil {
		t.Fatalf("a pool opened after the Dialer closed: %v", err)
	}
}

// The stand-in's endpoint enforces certificate expiry, so the expiry test
// above means something: with its clock five minutes ahead, a certificate
// of 4m3s is expired there on issue, and no connection is made.
func TestCloudSQLStandInRejectsExpiredCert(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	inst := start(t, srv, cloudsqltest.Options{CertLifetime: 4*time.Minute + 3*time.Second, ClockAhead: 5 * time.Minute}, nil)
	cloudEnv(t, inst, user)
	t.Setenv("RUNPOOL_DIAL_TIMEOUT", "2s")
	p, err := pgxadapter.NewFromEnv(ctxFor(t, 3*time.Second))
	if err == nil {
		p.Close()
		t.Fatal("connected with an expired certificate")
	}
	// The endpoint sends its alert before its handshake call returns and
	// counts the rejection, so the client may see the alert first.
	for deadline := time.Now().Add(2 * time.Second); inst.Rejected() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no handshake rejected; the open failed otherwise: %v", err)
		}
	}
}

// A drain that runs out of time cancels the statement still running, and
// the cancel request reaches the server through cloudsqlconn too (pgx
// dials it with the pool's dial function): no backend outlives the pool.
func TestCloudSQLDrainCancelsThroughConnector(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	inst := start(t, srv, cloudsqltest.Options{}, nil)
	cloudEnv(t, inst, user)
	p, err := pgxadapter.NewFromEnv(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	done := make(chan error, 1)
	go func() {
		_, err := p.Exec(context.Background(), "SELECT pg_sleep(30)")
		done <- err
	}()
	running := func() bool {
		return srv.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state = 'active' AND query LIKE 'SELECT pg_sleep%'", user) > 0
	}
	for deadline := time.Now().Add(10 * time.Second); !running(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the statement did not reach the server")
		}
	}
	before := inst.Handshakes()
	rep, _ := p.Shutdown(ctxFor(t, 2*time.Second))
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the 30 s statement finished")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the statement still runs 5 s after the drain's deadline")
	}
	if rep.Cancelled != 1 {
		t.Fatalf("drain report %+v: want 1 cancelled", rep)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Backends(t, user) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d backends 5 s after the drain", srv.Backends(t, user))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if h := inst.Handshakes(); h <= before {
		t.Fatalf("handshakes %d -> %d: the cancel request did not go through the connector", before, h)
	}
}
