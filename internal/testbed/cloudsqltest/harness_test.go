package cloudsqltest_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runpool/runpool/internal/testbed/cloudsqltest"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
	"github.com/runpool/runpool/sqladapter"
)

// childEnv names the adapter a child process opens; see runChild.
const childEnv = "CLOUDSQLTEST_CHILD"

func TestMain(m *testing.M) {
	if a := os.Getenv(childEnv); a != "" {
		os.Exit(runChild(a))
	}
	pgtest.Main(m)
}

// db is what these tests need from either adapter.
type db interface {
	Exec(ctx context.Context, sql string, args ...any) error
	QueryInt(ctx context.Context, sql string, args ...any) (int64, error)
	Close()
}

// adapter opens a pool from the environment alone.
type adapter struct {
	name string
	open func(ctx context.Context) (db, error)
}

var adapters = []adapter{
	{"pgx", func(ctx context.Context) (db, error) {
		p, err := pgxadapter.NewFromEnv(ctx)
		if err != nil {
			return nil, err
		}
		return pgxDB{p}, nil
	}},
	{"sql", func(ctx context.Context) (db, error) {
		d, err := sqladapter.OpenFromEnv(ctx)
		if err != nil {
			return nil, err
		}
		return sqlDB{d}, nil
	}},
}

type pgxDB struct{ *pgxadapter.Pool }

func (d pgxDB) Exec(ctx context.Context, sql string, args ...any) error {
	_, err := d.Pool.Exec(ctx, sql, args...)
	return err
}

func (d pgxDB) QueryInt(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := d.Pool.QueryRow(ctx, sql, args...).Scan(&n)
	return n, err
}

type sqlDB struct{ *sql.DB }

func (d sqlDB) Exec(ctx context.Context, sql string, args ...any) error {
	_, err := d.DB.ExecContext(ctx, sql, args...)
	return err
}

func (d sqlDB) QueryInt(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := d.DB.QueryRowContext(ctx, sql, args...).Scan(&n)
	return n, err
}

func (d sqlDB) Close() { _ = d.DB.Close() }

// cloudEnv sets the environment of a Cloud Run service that reaches
// inst as user: no host or port anywhere, only the instance name.
func cloudEnv(t *testing.T, inst *cloudsqltest.Instance, user string) {
	t.Helper()
	for k, v := range map[string]string{
		"DATABASE_URL":              "",
		"PGHOST":                    "",
		"PGPORT":                    "",
		"PGSSLMODE":                 "",
		"PGUSER":                    user,
		"PGPASSWORD":                "pw",
		"PGDATABASE":                user,
		"K_SERVICE":                 "cloudsqltest",
		"RUNPOOL_MAX_INSTANCES":     "1",
		"RUNPOOL_CLOUDSQL_INSTANCE": inst.ConnName(),
	} {
		t.Setenv(k, v)
	}
}

// start runs a stand-in in front of srv and points the process's Cloud SQL
// dialer at it through via (the endpoint when "").
func start(t *testing.T, srv *pgtest.Server, o cloudsqltest.Options, via func(*cloudsqltest.Instance) string) *cloudsqltest.Instance {
	t.Helper()
	o.Target = srv.Addr()
	inst, err := cloudsqltest.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.Close)
	addr := inst.Endpoint()
	if via != nil {
		addr = via(inst)
	}
	t.Cleanup(inst.Install(addr))
	return inst
}

func openDB(t *testing.T, a adapter) db {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := a.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// burstResult is what a burst of concurrent queries saw.
type burstResult struct {
	OK, Failed int
	P99        time.Duration
	Errors     []string
}

// burst runs n concurrent 5 ms queries, each with its own 2 s deadline,
// as request handlers would.
func burst(d db, n int) burstResult {
	var mu sync.Mutex
	var r burstResult
	var lat []time.Duration
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			t0 := time.Now()
			err := d.Exec(ctx, "SELECT pg_sleep(0.005)")
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, time.Since(t0))
			if err != nil {
				r.Failed++
				r.Errors = append(r.Errors, err.Error())
			} else {
				r.OK++
			}
		})
	}
	wg.Wait()
	slices.Sort(lat)
	r.P99 = lat[(len(lat)*99+99)/100-1]
	return r
}

// runChild is an instance in a process of its own, so that the test can
// freeze it with SIGSTOP as a platform freezes an idle instance: it opens
// a pool from the environment alone and runs a burst of the size read
// from each line of stdin, answering with a JSON line.
func runChild(name string) int {
	if !cloudsqltest.InstallFromEnv() {
		fmt.Fprintln(os.Stderr, "child: no stand-in in the environment")
		return 2
	}
	var a adapter
	for _, x := range adapters {
		if x.name == name {
			a = x
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	d, err := a.open(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer d.Close()
	fmt.Println(`{"OK":-1}`)
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var n int
		fmt.Sscan(in.Text(), &n)
		_ = out.Encode(burst(d, n))
	}
	return 0
}

// child is a running instance process.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
}

func startChild(t *testing.T, a adapter, env []string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), env...), childEnv+"="+a.name)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, out: json.NewDecoder(out)}
	t.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Process.Signal(syscall.SIGCONT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	var ready burstResult
	if err := c.out.Decode(&ready); err != nil || ready.OK != -1 {
		t.Fatalf("child did not start: %v", err)
	}
	return c
}

func (c *child) burst(t *testing.T, n int) burstResult {
	t.Helper()
	if _, err := fmt.Fprintln(c.in, n); err != nil {
		t.Fatal(err)
	}
	var r burstResult
	if err := c.out.Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func (c *child) freeze(t *testing.T, d time.Duration) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
