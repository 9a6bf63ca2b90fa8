// Package pgtest gives tests a real, throwaway PostgreSQL server: no mocks.
//
// Most tests use [Shared], one server per test binary, stopped by [Main]. Tests that stop, kill or
// restart the server, or need special settings, use [Start] for a dedicated one. Setting
// RUNPOOL_TEST_DATABASE_URL makes [Shared] use that existing server instead of starting one.
//
// Servers run from a fresh initdb in a temp dir, listen on a free port of 127.0.0.1 and trust every
// local connection (passwords are accepted but not checked). When the tests run as root, the server
// runs as the OS user "postgres", since PostgreSQL refuses to run as root.
//
// A crashed test binary does not leave servers behind: the postmaster gets SIGKILL when the binary
// dies (Linux parent-death signal) and its backends exit on postmaster death. Temp dirs left by a
// crashed binary are removed by the next binary that starts a server.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
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

// EnvURL names the environment variable that points [Shared] at an existing server.
const EnvURL = "RUNPOOL_TEST_DATABASE_URL"

// ErrNotOwned is returned by Stop, StartAgain, Restart and Kill on a server pgtest may not control:
// the one from RUNPOOL_TEST_DATABASE_URL, or the shared one (other tests run against it in parallel).
// Tests that need to stop a server should use [Start].
var ErrNotOwned = errors.New("pgtest: server is not owned by this test (use pgtest.Start for a dedicated server)")

const readyTimeout = 30 * time.Second

// Options for a dedicated server.
type Options struct {
	MaxConnections int               // 0 = 100
	Settings       map[string]string // extra postgresql.conf settings, e.g. {"superuser_reserved_connections":"3"}
	// PIDNamespace starts postgres as PID 1 of a PID namespace of its own (Linux, root only),
	// as in a container: the backends of two servers started so get PIDs from the same small
	// numbers, so one PID can name a session on each.
	PIDNamespace bool
}

// Server is a running throwaway PostgreSQL server listening on 127.0.0.1.
type Server struct {
	Host    string // "127.0.0.1"
	Port    int
	DataDir string

	root     string              // temp dir holding DataDir and the owner file; removed at the end
	bin      string              // dir of initdb and postgres
	cred     *syscall.Credential // OS user to run as; nil = ours
	pidns    bool                // postgres runs in a PID namespace of its own
	args     []string            // postgres -c settings, without -D and -p
	external string              // RUNPOOL_TEST_DATABASE_URL when the server is not ours
	shared   bool

	mu   sync.Mutex
	proc *process // nil while stopped
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returned
}

var (
	sharedOnce sync.Once
	sharedSrv  *Server
	sharedErr  error
)

// Shared returns the server shared by every test of this test binary, starting it on first use.
// If RUNPOOL_TEST_DATABASE_URL is set, it returns a Server describing that existing server instead.
// Stop, StartAgain, Restart and Kill on the shared server return [ErrNotOwned].
// If the server cannot be started it calls t.Fatal with the reason (never t.Skip: in CI a missing
// server is a failure).
func Shared(t testing.TB) *Server {
	t.Helper()
	sharedOnce.Do(func() {
		if raw := os.Getenv(EnvURL); raw != "" {
			sharedSrv, sharedErr = externalServer(raw)
			return
		}
		sharedSrv, sharedErr = start(Options{})
		if sharedSrv != nil {
			sharedSrv.shared = true
		}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedSrv
}

// Start starts a dedicated server (for tests that restart/kill it or need special settings).
// t.Cleanup stops it and removes its data dir.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.destroy(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// Main wraps testing.M: m.Run(), then stops and removes the shared server, then os.Exit(code).
// Use as: func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if sharedSrv != nil && sharedSrv.external == "" {
		if err := sharedSrv.destroy(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// URL returns the superuser DSN: postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable.
func (s *Server) URL() string {
	if s.external != "" {
		return s.external
	}
	return fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", s.Addr())
}

// URLFor returns a DSN for another role and database; password may be "".
func (s *Server) URLFor(user, password, db string) string {
	u, err := url.Parse(s.URL())
	if err != nil { // cannot happen: externalServer checked the URL
		panic(err)
	}
	if password == "" {
		u.User = url.User(user)
	} else {
		u.User = url.UserPassword(user, password)
	}
	u.Path = "/" + db
	u.RawPath = ""
	return u.String()
}

// Addr returns "host:port", e.g. "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Exec runs sql as superuser on a fresh connection; t.Fatal on error. Without args, sql may hold
// several statements.
func (s *Server) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn := s.connect(ctx, t)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// QueryInt runs sql as superuser and returns its single integer result; t.Fatal on error.
func (s *Server) QueryInt(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn := s.connect(ctx, t)
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
	return n
}

// CreateRole creates a fresh, uniquely named LOGIN role with password "pw" and connection limit
// connLimit (-1 = unlimited), plus a database of the same name owned by it, and returns the name.
// Connect with s.URLFor(user, "pw", user). Unique names keep parallel tests (and test binaries
// sharing RUNPOOL_TEST_DATABASE_URL) from seeing each other's backends. t.Cleanup drops both.
func (s *Server) CreateRole(t testing.TB, connLimit int) (user string) {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	user = "rp_" + hex.EncodeToString(b)
	id := pgx.Identifier{user}.Sanitize()
	s.Exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'pw' CONNECTION LIMIT %d", id, connLimit))
	s.Exec(t, fmt.Sprintf("CREATE DATABASE %s OWNER %s", id, id))
	t.Cleanup(func() { s.dropRole(id) })
	return user
}

// dropRole is best effort: the test may have left the server stopped, and a leftover role in a
// throwaway server harms no one.
func (s *Server) dropRole(id string) {
	if s.external == "" && s.Pid() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err == nil {
		_, _ = conn.Exec(ctx, "DROP ROLE IF EXISTS "+id)
	}
}

const clientBackendsOf = `SELECT pid FROM pg_stat_activity
	WHERE usename = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()`

// Backends returns how many client backends (pg_stat_activity rows) user has.
func (s *Server) Backends(t testing.TB, user string) int {
	t.Helper()
	return int(s.QueryInt(t, "SELECT count(*) FROM ("+clientBackendsOf+") b", user))
}

// TerminateBackends calls pg_terminate_backend on every client backend of user and returns how
// many it signalled. It waits (up to 10 s) until they are gone from pg_stat_activity, so a
// following Backends call sees them gone.
func (s *Server) TerminateBackends(t testing.TB, user string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn := s.connect(ctx, t)
	defer conn.Close(ctx)
	// Two queries: in one, the planner may call pg_terminate_backend before filtering by user.
	var pids []int32
	rows, _ := conn.Query(ctx, clientBackendsOf, user)
	candidates, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err == nil {
		err = conn.QueryRow(ctx, "SELECT coalesce(array_agg(pid), '{}') FROM unnest($1::int4[]) pid WHERE pg_terminate_backend(pid)", candidates).Scan(&pids)
	}
	if err != nil {
		t.Fatalf("pgtest: terminate backends of %s: %v", user, err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(pids) > 0; time.Sleep(10 * time.Millisecond) {
		var left int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&left); err != nil {
			t.Fatalf("pgtest: terminate backends of %s: %v", user, err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Logf("pgtest: %d terminated backends of %s still present after 10s", left, user)
			break
		}
	}
	return len(pids)
}

// Stop shuts the server down with PostgreSQL's fast shutdown (what pg_ctl stop -m fast does) and
// waits for it to exit; the data dir is kept. Stopping a stopped server is a no-op.
func (s *Server) Stop() error {
	if err := s.owned(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stop()
}

// StartAgain starts a stopped or killed server on the same port and data dir and waits until it
// accepts connections.
func (s *Server) StartAgain() error {
	if err := s.owned(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("pgtest: server is already running")
	}
	return s.startProcess()
}

// Restart is Stop followed by StartAgain.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.StartAgain()
}

// Kill sends SIGKILL to the postmaster and its children, as in a crash or OOM kill, and waits for
// them to exit; the data dir is kept, so StartAgain runs crash recovery.
func (s *Server) Kill() error {
	if err := s.owned(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return errors.New("pgtest: server is not running")
	}
	s.proc = nil
	kill(p)
	return nil
}

// Pid returns the postmaster pid, or 0 if the server is stopped or not ours.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

func (s *Server) owned() error {
	if s.external != "" || s.shared {
		return ErrNotOwned
	}
	return nil
}

// Conn opens a connection as superuser that stays open until the test
// ends: for an observer that queries often (a sampler), which would
// otherwise start a server backend per query and load the server it
// measures.
func (s *Server) Conn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn := s.connect(ctx, t)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (s *Server) connect(ctx context.Context, t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", s.Addr(), err)
	}
	return conn
}

func externalServer(raw string) (*Server, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("pgtest: %s must be a postgres:// URL", EnvURL)
	}
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %s: %w", EnvURL, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %s: %w", EnvURL, err)
	}
	conn.Close(ctx)
	return &Server{Host: cfg.Host, Port: int(cfg.Port), external: raw}, nil
}

// start runs initdb in a new temp dir and starts postgres on a free port, retrying once with
// another port if someone took it between our probe and postgres' bind.
func start(opts Options) (*Server, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	cleanStale()
	root, err := os.MkdirTemp("", "runpool-pgtest-*") // 0700; unique per server
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{Host: "127.0.0.1", DataDir: filepath.Join(root, "data"), root: root, bin: bin, cred: cred, pidns: opts.PIDNamespace}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(root)
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return fail(fmt.Errorf("pgtest: %w", err))
	}
	if cred != nil {
		if err := os.Chown(root, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(fmt.Errorf("pgtest: %w", err))
		}
	}
	if err := s.initdb(); err != nil {
		return fail(err)
	}

	maxConn := opts.MaxConnections
	if maxConn == 0 {
		maxConn = 100
	}
	s.args = []string{
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + s.DataDir, // private: parallel servers never share a socket dir
		"-c", "fsync=off", // throwaway data
		"-c", "max_connections=" + strconv.Itoa(maxConn),
	}
	keys := make([]string, 0, len(opts.Settings))
	for k := range opts.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.args = append(s.args, "-c", k+"="+opts.Settings[k])
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if s.Port, err = freePort(); err != nil {
			return fail(err)
		}
		err = s.startProcess()
		if err == nil {
			return s, nil
		}
		var clash portClash
		if attempt > 0 || !errors.As(err, &clash) {
			return fail(err)
		}
	}
}

func (s *Server) initdb() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "initdb"),
		"-D", s.DataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
	cmd.Dir = s.root // the postgres OS user may not be able to enter our working dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb %s: %v\n%s", s.DataDir, err, out)
	}
	return nil
}

// serverEnv makes server messages English, so that port clashes can be recognised in the log.
func serverEnv() []string { return append(os.Environ(), "LC_ALL=C") }

func (s *Server) logPath() string { return filepath.Join(s.DataDir, "postgres.log") }

// startProcess starts postgres and waits until it accepts connections. Caller holds s.mu.
func (s *Server) startProcess() error {
	logf, err := os.OpenFile(s.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	logStart, _ := logf.Seek(0, io.SeekEnd)
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), append([]string{"-D", s.DataDir, "-p", strconv.Itoa(s.Port)}, s.args...)...)
	cmd.Dir = s.root
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,            // Ctrl-C on go test must not hit the server before our cleanup runs
		Pdeathsig:  syscall.SIGKILL, // watchdog: the server dies with the test binary
		Credential: s.cred,
	}
	if s.pidns {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the *thread* that forked the child exits, and Go retires threads
		// freely. This goroutine keeps its thread locked and busy in cmd.Wait for the server's whole
		// life, so the signal fires only when the whole test binary dies. It never unlocks, so the
		// thread is discarded when the server has exited.
		runtime.LockOSThread()
		err := cmd.Start()
		logf.Close()
		started <- err
		if err != nil {
			return
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	if err := s.waitReady(p, logStart); err != nil {
		kill(p)
		return err
	}
	s.proc = p
	return nil
}

// portClash marks a startup failure caused by the port being taken.
type portClash struct{ error }

// waitReady connects with pgx until the server answers (up to 30 s), or fails early if postgres
// exited.
func (s *Server) waitReady(p *process, logStart int64) error {
	var lastErr error
	for deadline := time.Now().Add(readyTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-p.done:
			tail := logTail(s.logPath(), logStart)
			err := fmt.Errorf("pgtest: postgres on port %d exited during startup (%v); log %s:\n%s", s.Port, p.cmd.ProcessState, s.logPath(), tail)
			if strings.Contains(tail, "could not bind") || strings.Contains(tail, "already in use") {
				return portClash{err}
			}
			return err
		default:
		}
		if lastErr = s.ping(); lastErr == nil {
			return nil
		}
	}
	return fmt.Errorf("pgtest: postgres on port %d not ready after %v: %v; log %s:\n%s", s.Port, readyTimeout, lastErr, s.logPath(), logTail(s.logPath(), logStart))
}

// ping checks that our server, not another one that grabbed the port, accepts connections.
func (s *Server) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var dir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dir); err != nil {
		return err
	}
	if dir != s.DataDir {
		return fmt.Errorf("port %d is served by another server (data dir %s)", s.Port, dir)
	}
	return nil
}

// stop does a fast shutdown (SIGINT), falling back to SIGKILL after a minute. Caller holds s.mu.
func (s *Server) stop() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	select {
	case <-p.done:
		return fmt.Errorf("pgtest: postgres on port %d had exited unexpectedly (%v); log %s:\n%s", s.Port, p.cmd.ProcessState, s.logPath(), logTail(s.logPath(), 0))
	default:
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		kill(p)
		return nil
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(time.Minute):
		kill(p)
		return fmt.Errorf("pgtest: postgres on port %d ignored fast shutdown for a minute; killed", s.Port)
	}
}

// destroy stops the server and removes its temp dir.
func (s *Server) destroy() error {
	s.mu.Lock()
	err := s.stop()
	s.mu.Unlock()
	if rmErr := os.RemoveAll(s.root); rmErr != nil && err == nil {
		err = fmt.Errorf("pgtest: %w", rmErr)
	}
	return err
}

// kill SIGKILLs the postmaster, its process group and its children, and waits until they are
// gone. Backends call setsid, so the group alone does not reach them, and they must be gone
// before a restart: a new postmaster refuses to start while old backends hold shared memory.
func kill(p *process) {
	select {
	case <-p.done:
		return
	default:
	}
	pid := p.cmd.Process.Pid
	kids := childPids(pid)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	for _, k := range kids {
		_ = syscall.Kill(k, syscall.SIGKILL)
	}
	<-p.done
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		living := 0
		for _, k := range kids {
			if alive(k) {
				living++
			}
		}
		if living == 0 {
			return
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns the last lines the server logged after offset from.
func logTail(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	const max = 8 << 10
	if fi, err := f.Stat(); err == nil && fi.Size()-from > max {
		from = fi.Size() - max
	}
	_, _ = f.Seek(from, io.SeekStart)
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// procStat reads the state and parent pid of pid from /proc.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')') // the command name in parens may contain anything
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || f[0] == "" {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid, true
}

// alive reports whether pid runs; zombies count as dead (an unreaping PID 1 in a container keeps
// them around, but they hold no resources).
func alive(pid int) bool {
	if state, _, ok := procStat(pid); ok {
		return state != 'Z' && state != 'X'
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

func childPids(ppid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, pp, ok := procStat(pid); ok && pp == ppid {
			kids = append(kids, pid)
		}
	}
	return kids
}

var staleOnce sync.Once

// cleanStale removes temp dirs of servers whose test binary died without cleaning up (killed, or
// a test without pgtest.Main), killing a postmaster the watchdog missed. Only dirs with an owner
// file naming a dead process qualify.
func cleanStale() {
	staleOnce.Do(func() {
		roots, _ := filepath.Glob(filepath.Join(os.TempDir(), "runpool-pgtest-*"))
		for _, root := range roots {
			b, err := os.ReadFile(filepath.Join(root, "owner"))
			if err != nil {
				continue // not readable by us, or still being set up
			}
			owner, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || alive(owner) {
				continue
			}
			data := filepath.Join(root, "data")
			if pm, err := os.ReadFile(filepath.Join(data, "postmaster.pid")); err == nil {
				pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pm), "\n", 2)[0]))
				if pid > 0 && alive(pid) {
					cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
					if !bytes.Contains(cmdline, []byte(data)) {
						continue // pid reused by something else, or not ours to judge
					}
					_ = syscall.Kill(pid, syscall.SIGKILL) // its backends exit on postmaster death
				}
			}
			_ = os.RemoveAll(root)
		}
	})
}
