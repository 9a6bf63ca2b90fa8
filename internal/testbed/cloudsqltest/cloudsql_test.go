package cloudsqltest_test

import (
	"context"
	"testing"
	"time"

	"github.com/runpool/runpool/internal/testbed/cloudsqltest"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// A pool opened from the environment alone (instance name, user,
// password, database) reaches PostgreSQL through cloudsqlconn: the
// stand-in issued a certificate and its TLS endpoint accepted it.
func TestCloudSQLFromEnv(t *testing.T) {
	srv := pgtest.Shared(t)
	for _, a := range adapters {
		t.Run(a.name, func(t *testing.T) {
			user := srv.CreateRole(t, -1)
			inst := start(t, srv, cloudsqltest.Options{}, nil)
			cloudEnv(t, inst, user)
			d := openDB(t, a)
			ctx := ctxFor(t, 10*time.Second)
			if r := burst(d, 8); r.Failed > 0 {
				t.Fatalf("%d of 8 queries failed: %v", r.Failed, r.Errors[0])
			}
			n, err := d.QueryInt(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = current_user AND client_addr IS NOT NULL")
			if err != nil {
				t.Fatal(err)
			}
			if inst.CertsIssued() == 0 || inst.Handshakes() < int(n) || inst.Dialled(cloudsqltest.PublicIP) < int(n) {
				t.Fatalf("%d backends but %d certificates, %d handshakes, %d dials to the public IP: not through cloudsqlconn",
					n, inst.CertsIssued(), inst.Handshakes(), inst.Dialled(cloudsqltest.PublicIP))
			}
			t.Logf("%d backends, %d certificate(s), %d handshakes", n, inst.CertsIssued(), inst.Handshakes())
		})
	}
}

// An ephemeral certificate expires while the pool holds connections made
// with it; the next connections get a new certificate and every query
// succeeds. The stand-in issues certificates valid for 4m3s and its
// endpoint's clock runs 4 minutes ahead, so a certificate expires there 3 s
// after issue: the moment cloudsqlconn's 4-minute refresh buffer says to
// replace it. Both refresh modes: lazy (on dial, the default on Cloud Run)
// and refresh-ahead (in the background; one adapter is enough, the
// connector's cache is the same).
func TestCloudSQLCertExpiry(t *testing.T) {
	const usable = 3 * time.Second
	srv := pgtest.Shared(t)
	for _, a := range adapters {
		for _, lazy := range []string{"true", "false"} {
			if lazy == "false" && a.name != "pgx" {
				continue
			}
			t.Run(a.name+"/lazy="+lazy, func(t *testing.T) {
				user := srv.CreateRole(t, -1)
				inst := start(t, srv, cloudsqltest.Options{CertLifetime: 4*time.Minute + usable, ClockAhead: 4 * time.Minute}, nil)
				cloudEnv(t, inst, user)
				t.Setenv("RUNPOOL_CLOUDSQL_LAZY_REFRESH", lazy)
				d := openDB(t, a)
				if r := burst(d, 8); r.Failed > 0 {
					t.Fatalf("%d of 8 failed: %v", r.Failed, r.Errors[0])
				}
				// The certificate was issued by now: from here, usable
				// passes it at the endpoint, and the client's refresh is
				// due. Timed from before the first dial instead, a slow
				// first fetch (a loaded machine) left the client a
				// certificate still valid by its clock, whose handshake
				// reached the endpoint after its expiry there.
				issued := time.Now()
				first, seen := inst.CertsIssued(), inst.ClientCertsSeen()
				if seen != 1 {
					t.Fatalf("%d client certificates before expiry, want 1 shared by every connection", seen)
				}
				time.Sleep(time.Until(issued.Add(usable + 500*time.Millisecond)))

				// Open connections outlive their certificate, as on Cloud SQL.
				if r := burst(d, 8); r.Failed > 0 {
					t.Fatalf("after expiry, on open connections: %d of 8 failed: %v", r.Failed, r.Errors[0])
				}
				// New connections need a new certificate: a second pool from
				// the same environment dials through the process's connector,
				// which still holds the expired one (the first pool stays
				// open, so the connector is not recreated). Terminating the
				// first pool's backends instead raced with the stand-in's
				// forwarding of their FATAL 57P01 on a loaded machine: a
				// query sent before it arrived failed with it.
				if lazy == "false" {
					// Refresh-ahead replaces the certificate in the
					// background, on a timer a loaded machine may run late.
					for deadline := time.Now().Add(10 * time.Second); inst.CertsIssued() <= first && time.Now().Before(deadline); {
						time.Sleep(20 * time.Millisecond)
					}
				}
				d = openDB(t, a)
				if r := burst(d, 8); r.Failed > 0 {
					t.Fatalf("after expiry, on new connections: %d of 8 failed: %v", r.Failed, r.Errors[0])
				}
				if inst.CertsIssued() <= first || inst.ClientCertsSeen() <= seen {
					t.Fatalf("certificates issued %d -> %d, presented %d -> %d: no refresh", first, inst.CertsIssued(), seen, inst.ClientCertsSeen())
				}
				if n := inst.Rejected(); n > 0 {
					t.Fatalf("the endpoint rejected %d handshakes: an expired certificate was presented", n)
				}
				t.Logf("certificates issued %d -> %d, presented %d -> %d, handshakes %d", first, inst.CertsIssued(), seen, inst.ClientCertsSeen(), inst.Handshakes())
			})
		}
	}
}

// The freeze-plus-NAT scenario of the stale-connections issue, through
// cloudsqlconn: a NAT between the instance and Cloud SQL's endpoint
// forgets flows idle for 1 s (black hole or reset); the instance, a
// process of its own, is frozen 2 s with SIGSTOP; on thaw a burst of 16
// concurrent queries with 2 s deadlines is served in full.
func TestCloudSQLFreezeBehindNAT(t *testing.T) {
	srv := pgtest.Shared(t)
	for _, a := range adapters {
		for _, mode := range []faultproxy.Mode{faultproxy.Blackhole, faultproxy.Reset} {
			t.Run(a.name+"/"+mode.String(), func(t *testing.T) {
				user := srv.CreateRole(t, -1)
				var nat *faultproxy.Proxy
				inst := start(t, srv, cloudsqltest.Options{}, func(inst *cloudsqltest.Instance) string {
					var err error
					nat, err = faultproxy.Start(faultproxy.Config{Target: inst.Endpoint(), Mode: mode, IdleTimeout: time.Second})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { nat.Close() })
					return nat.Addr()
				})
				cloudEnv(t, inst, user)
				c := startChild(t, a, inst.ChildEnv(nat.Addr()))
				warm := c.burst(t, 8)
				if warm.Failed > 0 {
					t.Fatalf("warm-up: %d of 8 failed: %v", warm.Failed, warm.Errors[0])
				}
				c.freeze(t, 2*time.Second)
				r := c.burst(t, 16)
				if nat.Dropped() == 0 {
					t.Fatal("the NAT forgot no flow: the scenario did not happen")
				}
				t.Logf("after the freeze: %d/16 ok, p99 %v; the NAT dropped %d flows; %d handshakes", r.OK, r.P99.Round(time.Millisecond), nat.Dropped(), inst.Handshakes())
				if r.Failed > 0 {
					t.Fatalf("%d of 16 failed: %v", r.Failed, r.Errors[0])
				}
				// The warm-up burst dialed its connections through the same
				// connector on the same machine: three times its p99 is what
				// replacing stale connections may cost when this machine is
				// busy, and never less than half the deadline.
				if bar := max(time.Second, 3*warm.P99); r.P99 > bar {
					t.Fatalf("p99 %v: over %v (half the deadline, or 3x the warm-up burst's p99 %v)", r.P99, bar, warm.P99)
				}
			})
		}
	}
}

// The reason for lazy refresh: an instance frozen past its certificate's
// expiry (here 3 s at the endpoint, see TestCloudSQLCertExpiry) and past
// the NAT's idle timeout serves its next burst in full; the dials on thaw
// fetch a new certificate and present no expired one.
func TestCloudSQLFreezePastCertExpiry(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	var nat *faultproxy.Proxy
	inst := start(t, srv, cloudsqltest.Options{CertLifetime: 4*time.Minute + 3*time.Second, ClockAhead: 4 * time.Minute},
		func(inst *cloudsqltest.Instance) string {
			var err error
			nat, err = faultproxy.Start(faultproxy.Config{Target: inst.Endpoint(), Mode: faultproxy.Blackhole, IdleTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nat.Close() })
			return nat.Addr()
		})
	cloudEnv(t, inst, user)
	c := startChild(t, adapters[0], inst.ChildEnv(nat.Addr()))
	if r := c.burst(t, 8); r.Failed > 0 {
		t.Fatalf("warm-up: %d of 8 failed: %v", r.Failed, r.Errors[0])
	}
	issued := inst.CertsIssued()
	c.freeze(t, 4*time.Second)
	r := c.burst(t, 16)
	t.Logf("after the freeze: %d/16 ok, p99 %v; certificates %d -> %d; NAT dropped %d flows", r.OK, r.P99.Round(time.Millisecond), issued, inst.CertsIssued(), nat.Dropped())
	if r.Failed > 0 {
		t.Fatalf("%d of 16 failed: %v", r.Failed, r.Errors[0])
	}
	if nat.Dropped() == 0 || inst.CertsIssued() <= issued {
		t.Fatalf("the scenario did not happen: %d flows dropped, certificates %d -> %d", nat.Dropped(), issued, inst.CertsIssued())
	}
	if n := inst.Rejected(); n > 0 {
		t.Fatalf("the endpoint rejected %d handshakes: an expired certificate was presented", n)
	}
}
