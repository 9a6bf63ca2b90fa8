// Package pgbouncertest gives tests a real PgBouncer in front of a
// throwaway PostgreSQL server (internal/testbed/pgtest): no mocks.
//
// PgBouncer comes from Debian's package (/usr/sbin/pgbouncer, installed by
// scripts/deps). It listens on a free port of 127.0.0.1, pools in
// transaction mode unless told otherwise, and trusts the users it is given
// (auth_type=trust with a userlist; the server behind it trusts local
// connections too). PgBouncer refuses to run as root, so as root it runs as
// the OS user "postgres", as pgtest runs the server. It dies with the test
// binary (Linux parent-death signal) and is stopped by t.Cleanup.
package pgbouncertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Binary is where Debian's package installs PgBouncer.
const Binary = "/usr/sbin/pgbouncer"

const readyTimeout = 20 * time.Second

// Options for a PgBouncer.
type Options struct {
	// Target is the server's "host:port" (pgtest's s.Addr()).
	Target string
	// Users may connect (plus "postgres", the admin console's user).
	Users []string
	// PoolMode is transaction (default), session or statement.
	PoolMode string
	// PoolSize is default_pool_size: server connections per user and
	// database. Default 4.
	PoolSize int
	// MaxClientConn is max_client_conn. Default 200.
	MaxClientConn int
	// Settings are extra [pgbouncer] settings, e.g. {"client_idle_timeout": "30"}.
	Settings map[string]string
}

// Bouncer is a running PgBouncer.
type Bouncer struct {
	Host string // "127.0.0.1"
	Port int

	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returned
}

// Start starts a PgBouncer for opts; t.Cleanup stops it. It calls t.Fatal
// when it cannot (never t.Skip: in CI a missing PgBouncer is a failure).
func Start(t testing.TB, opts Options) *Bouncer {
	t.Helper()
	b, err := start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.stop)
	return b
}

// Version returns PgBouncer's version ("1.18.0"), or an error when it is
// not installed.
func Version() (string, error) {
	out, err := exec.Command(Binary, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("pgbouncertest: %s --version: %v (install with scripts/deps)", Binary, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimPrefix(strings.TrimSpace(first), "PgBouncer "), nil
}

// Addr returns "127.0.0.1:PORT".
func (b *Bouncer) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(b.Port)) }

// URLFor returns a DSN through PgBouncer for user and database db;
// password may be "".
func (b *Bouncer) URLFor(user, password, db string) string {
	u := &url.URL{Scheme: "postgres", Host: b.Addr(), Path: "/" + db, RawQuery: "sslmode=disable"}
	if password == "" {
		u.User = url.User(user)
	} else {
		u.User = url.UserPassword(user, password)
	}
	return u.String()
}

// Admin runs a command on PgBouncer's admin console (e.g. "SHOW POOLS")
// and returns its rows as strings; t.Fatal on error.
func (b *Bouncer) Admin(t testing.TB, command string) [][]string {
	t.Helper()
	rows, err := b.admin(command)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func (b *Bouncer) admin(command string) ([][]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cc, err := pgx.ParseConfig(b.URLFor("postgres", "", "pgbouncer"))
	if err != nil {
		return nil, err
	}
	cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol // the console speaks nothing else
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	res, err := conn.PgConn().Exec(ctx, command).ReadAll()
	if err != nil {
		return nil, err
	}
	var out [][]string
	for _, r := range res {
		for _, row := range r.Rows {
			var cells []string
			for _, c := range row {
				cells = append(cells, string(c))
			}
			out = append(out, cells)
		}
	}
	return out, nil
}

// Kill ends PgBouncer at once (SIGKILL), as a crash would.
func (b *Bouncer) Kill() {
	_ = b.cmd.Process.Kill()
	<-b.done
}

func start(opts Options) (*Bouncer, error) {
	if _, err := Version(); err != nil {
		return nil, err
	}
	if opts.Target == "" {
		return nil, errors.New("pgbouncertest: Options.Target (the server's host:port) is empty")
	}
	host, port, err := net.SplitHostPort(opts.Target)
	if err != nil {
		return nil, fmt.Errorf("pgbouncertest: Options.Target %q: %v", opts.Target, err)
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	cleanStale()
	dir, err := os.MkdirTemp("", dirPattern)
	if err != nil {
		return nil, fmt.Errorf("pgbouncertest: %w", err)
	}
	b := &Bouncer{Host: "127.0.0.1", dir: dir}
	fail := func(err error) (*Bouncer, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fail(fmt.Errorf("pgbouncertest: %w", err))
	}
	if opts.PoolMode == "" {
		opts.PoolMode = "transaction"
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = 4
	}
	if opts.MaxClientConn == 0 {
		opts.MaxClientConn = 200
	}
	var users strings.Builder
	for _, u := range append([]string{"postgres"}, opts.Users...) {
		fmt.Fprintf(&users, "%q \"\"\n", u)
	}
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(users.String()), 0o644); err != nil {
		return fail(fmt.Errorf("pgbouncertest: %w", err))
	}
	if cred != nil {
		for _, p := range []string{dir, filepath.Join(dir, "userlist.txt")} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return fail(fmt.Errorf("pgbouncertest: %w", err))
			}
		}
	}
	for attempt := 0; ; attempt++ {
		if b.Port, err = freePort(); err != nil {
			return fail(err)
		}
		settings := map[string]string{
			"listen_addr":       "127.0.0.1",
			"listen_port":       strconv.Itoa(b.Port),
			"unix_socket_dir":   "", // none: parallel bouncers never share a socket
			"auth_type":         "trust",
			"auth_file":         filepath.Join(dir, "userlist.txt"),
			"admin_users":       "postgres",
			"pool_mode":         opts.PoolMode,
			"default_pool_size": strconv.Itoa(opts.PoolSize),
			"max_client_conn":   strconv.Itoa(opts.MaxClientConn),
			"logfile":           filepath.Join(dir, "pgbouncer.log"),
			"pidfile":           "",
		}
		for k, v := range opts.Settings {
			settings[k] = v
		}
		keys := make([]string, 0, len(settings))
		for k := range settings {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var ini strings.Builder
		fmt.Fprintf(&ini, "[databases]\n* = host=%s port=%s\n\n[pgbouncer]\n", host, port)
		for _, k := range keys {
			fmt.Fprintf(&ini, "%s = %s\n", k, settings[k])
		}
		conf := filepath.Join(dir, "pgbouncer.ini")
		if err := os.WriteFile(conf, []byte(ini.String()), 0o644); err != nil {
			return fail(fmt.Errorf("pgbouncertest: %w", err))
		}
		if cred != nil {
			if err := os.Chown(conf, int(cred.Uid), int(cred.Gid)); err != nil {
				return fail(fmt.Errorf("pgbouncertest: %w", err))
			}
		}
		err = b.run(conf, cred)
		if err == nil {
			return b, nil
		}
		if attempt > 0 || !strings.Contains(err.Error(), "in use") {
			return fail(err)
		}
	}
}

// run starts PgBouncer in the foreground and waits until its admin console
// answers.
func (b *Bouncer) run(conf string, cred *syscall.Credential) error {
	cmd := exec.Command(Binary, conf)
	cmd.Dir = b.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,            // Ctrl-C on go test must not reach it before our cleanup runs
		Pdeathsig:  syscall.SIGKILL, // it dies with the test binary
		Credential: cred,
	}
	done := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child exits: this
		// goroutine keeps its thread for PgBouncer's whole life (see pgtest).
		runtime.LockOSThread()
		err := cmd.Start()
		started <- err
		if err != nil {
			return
		}
		_ = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgbouncertest: start %s: %w", Binary, err)
	}
	b.cmd, b.done = cmd, done
	var lastErr error
	for deadline := time.Now().Add(readyTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-done:
			return fmt.Errorf("pgbouncertest: pgbouncer on port %d exited during startup (%v):\n%s", b.Port, cmd.ProcessState, b.log())
		default:
		}
		if _, lastErr = b.admin("SHOW VERSION"); lastErr == nil {
			return nil
		}
	}
	b.Kill()
	return fmt.Errorf("pgbouncertest: pgbouncer on port %d not ready after %v: %v\n%s", b.Port, readyTimeout, lastErr, b.log())
}

// Log returns PgBouncer's log so far, for failure messages.
func (b *Bouncer) Log() string { return b.log() }

func (b *Bouncer) log() string {
	out, err := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// stop ends PgBouncer (SIGTERM: immediate shutdown; SIGKILL after 5 s) and
// removes its directory.
func (b *Bouncer) stop() {
	select {
	case <-b.done:
	default:
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(5 * time.Second):
			b.Kill()
		}
	}
	os.RemoveAll(b.dir)
}

// credential is the OS user "postgres" when we are root, since PgBouncer
// refuses to run as root; nil otherwise.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgbouncertest: running as root needs an OS user %q to run pgbouncer as: %v", "postgres", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgbouncertest: bad uid/gid %q/%q for OS user postgres", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgbouncertest: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

const dirPattern = "runpool-pgbouncer-*"

var staleOnce sync.Once

// cleanStale removes the directories of bouncers whose test binary died
// without cleaning up; the bouncers themselves died with it (Pdeathsig).
// Only directories whose owner file names a process gone qualify.
func cleanStale() {
	staleOnce.Do(func() {
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPattern))
		for _, dir := range dirs {
			b, err := os.ReadFile(filepath.Join(dir, "owner"))
			if err != nil {
				continue // still being set up, or not ours
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || pid <= 0 {
				continue
			}
			if err := syscall.Kill(pid, 0); err == nil || err == syscall.EPERM {
				continue // the owner runs
			}
			_ = os.RemoveAll(dir)
		}
	})
}
