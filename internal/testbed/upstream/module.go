package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// modulePath is the temporary module's path.
const modulePath = "runpool.test/upstream"

// A Module is the temporary module holding the rewritten suites.
type Module struct {
	Dir        string
	PgxDir     string // pgx's source in the module cache
	PgxVersion string
	// Tests are each suite's top-level tests, as pgx has them.
	Tests map[string][]string
}

// goCmd runs the go command in dir with GOFLAGS=-mod=mod added, so the
// temporary module's missing requirements and go.sum lines resolve
// through GOPROXY and GOMODCACHE as for the repository itself.
func goCmd(ctx context.Context, dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	flags := strings.TrimSpace(os.Getenv("GOFLAGS") + " -mod=mod")
	cmd.Env = append(append(os.Environ(), "GOFLAGS="+flags), env...)
	return cmd
}

// pgxSource returns the directory and version of the pgx module that the
// repository at root requires, from `go mod download -json`.
func pgxSource(ctx context.Context, root string) (dir, version string, err error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "github.com/jackc/pgx/v5")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("go mod download github.com/jackc/pgx/v5: %w: %s", err, stderrOf(err))
	}
	var m struct{ Dir, Version, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", "", err
	}
	if m.Error != "" || m.Dir == "" {
		return "", "", fmt.Errorf("go mod download github.com/jackc/pgx/v5: %s", m.Error)
	}
	return m.Dir, m.Version, nil
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// Build writes the temporary module in dir: a go.mod requiring the
// repository at root (replace) and the pgx version it requires, go.sum
// lines from both modules, each suite rewritten, and pgx's pgmock.
func Build(ctx context.Context, dir, root string, exp []Expectation) (*Module, error) {
	pgxDir, version, err := pgxSource(ctx, root)
	if err != nil {
		return nil, err
	}
	m := &Module{Dir: dir, PgxDir: pgxDir, PgxVersion: version, Tests: map[string][]string{}}
	goVersion, err := goDirective(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	testify, err := requirement(filepath.Join(pgxDir, "go.mod"), "github.com/stretchr/testify")
	if err != nil {
		return nil, err
	}
	gomod := fmt.Sprintf(`module %s

go %s

require (
	github.com/jackc/pgx/v5 %s
	github.com/runpool/runpool v0.0.0
	github.com/stretchr/testify %s
)

replace github.com/runpool/runpool => %s
`, modulePath, goVersion, version, testify, root)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		return nil, err
	}
	var sums []byte
	for _, f := range []string{filepath.Join(root, "go.sum"), filepath.Join(pgxDir, "go.sum")} {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sums = append(sums, b...)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sums, 0o644); err != nil {
		return nil, err
	}
	if err := copyDir(filepath.Join(pgxDir, "internal", "pgmock"), filepath.Join(dir, "internal", "pgmock")); err != nil {
		return nil, err
	}
	for _, s := range Suites {
		if err := m.writeSuite(s, skipsOf(exp, s.Name)); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Module) writeSuite(s Suite, skips map[string]string) error {
	out := filepath.Join(m.Dir, s.Name)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var files []string
	for _, pat := range s.Files {
		matches, err := filepath.Glob(filepath.Join(m.PgxDir, s.Dir, pat))
		if err != nil {
			return err
		}
		files = append(files, matches...)
	}
	if len(files) == 0 {
		return fmt.Errorf("suite %s: no files %v in %s", s.Name, s.Files, filepath.Join(m.PgxDir, s.Dir))
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		names, err := TestNames(f, src)
		if err != nil {
			return err
		}
		m.Tests[s.Name] = append(m.Tests[s.Name], names...)
		out, err := s.Rewrite(f, src, skips)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(m.Dir, s.Name, filepath.Base(f)), out, 0o644); err != nil {
			return err
		}
	}
	for name := range skips {
		if !slices.Contains(m.Tests[s.Name], name) {
			return fmt.Errorf("expected.txt skips %s %s, which pgx %s does not have", s.Name, name, m.PgxVersion)
		}
	}
	for name, src := range s.Extra {
		if err := os.WriteFile(filepath.Join(out, name), []byte(src), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// copyDir copies the non-test Go files of from into to, which it creates.
func copyDir(from, to string) error {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(from, "*.go"))
	if err != nil {
		return err
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(f)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func goDirective(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	if m := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(b); m != nil {
		return string(m[1]), nil
	}
	return "", fmt.Errorf("%s: no go directive", gomod)
}

func requirement(gomod, mod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	if m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(mod) + `\s+(\S+)`).FindSubmatch(b); m != nil {
		return string(m[1]), nil
	}
	return "", fmt.Errorf("%s: does not require %s", gomod, mod)
}

// A Result is what one suite's run did.
type Result struct {
	Suite string
	Total int // top-level tests in pgx's suite
	// Passed, Failed and Skipped are the top-level tests by outcome.
	Passed, Failed, Skipped []string
	// Failures holds every failed or skipped test, subtests included, with
	// its output.
	Failures map[string]string
	Skips    map[string]string
	// BuildError is the first line the compiler reported when the suite
	// does not compile.
	BuildError string
	// Elapsed is the go test run's wall time, compile included.
	Elapsed string
}

// Summary is the one line printed for the suite.
func (r *Result) Summary() string {
	if r.BuildError != "" {
		return fmt.Sprintf("%s: 0/%d: does not compile: %s", r.Suite, r.Total, r.BuildError)
	}
	return fmt.Sprintf("%s: %d/%d passed, %d failed, %d skipped (%s)", r.Suite, len(r.Passed), r.Total,
		len(r.Failed), len(r.Skipped), r.Elapsed)
}

type event struct {
	Action, Test, Output, Package, ImportPath string
	Elapsed                                   float64
}

// Run runs one suite with `go test -json` in the module, against dsn
// (PGX_TEST_DATABASE), with extra go test flags.
func (m *Module) Run(ctx context.Context, suite, dsn string, flags ...string) (*Result, error) {
	args := append([]string{"test", "-json", "-count=1"}, flags...)
	args = append(args, "./"+suite)
	cmd := goCmd(ctx, m.Dir, []string{"PGX_TEST_DATABASE=" + dsn}, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &Result{Suite: suite, Total: len(m.Tests[suite]), Failures: map[string]string{}, Skips: map[string]string{}}
	output := map[string]*strings.Builder{}
	var build strings.Builder
	var elapsed float64
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			build.WriteString(sc.Text() + "\n")
			continue
		}
		switch e.Action {
		case "build-output":
			build.WriteString(e.Output)
			continue
		case "output":
			if e.Test != "" {
				if output[e.Test] == nil {
					output[e.Test] = &strings.Builder{}
				}
				output[e.Test].WriteString(e.Output)
			}
		case "pass", "fail", "skip":
			if e.Test == "" {
				elapsed = e.Elapsed
				continue
			}
			out := ""
			if b := output[e.Test]; b != nil {
				out = b.String()
			}
			top := !strings.Contains(e.Test, "/")
			switch e.Action {
			case "pass":
				if top {
					r.Passed = append(r.Passed, e.Test)
				}
			case "fail":
				if top {
					r.Failed = append(r.Failed, e.Test)
				}
				r.Failures[e.Test] = out
			case "skip":
				if top {
					r.Skipped = append(r.Skipped, e.Test)
				}
				r.Skips[e.Test] = out
			}
		}
	}
	waitErr := cmd.Wait()
	r.Elapsed = fmt.Sprintf("%.0fs", elapsed)
	ran := len(r.Passed) + len(r.Failed) + len(r.Skipped)
	if waitErr != nil && ran == 0 {
		all := build.String() + stderr.String()
		r.BuildError = firstCompileError(all)
		if r.BuildError == "" {
			return nil, fmt.Errorf("go test ./%s: %v: %s", suite, waitErr, strings.TrimSpace(all))
		}
	}
	return r, nil
}

var compileError = regexp.MustCompile(`(?m)^\S+\.go:\d+(:\d+)?: .*$`)

// firstCompileError returns the first "file.go:line:col: message" line.
func firstCompileError(out string) string {
	return compileError.FindString(out)
}

// Check compares r with expected.txt: every failed or skipped test must be
// expected (a test whose failed subtests are all expected counts as
// expected), and every expectation of the suite must have happened. It
// returns one line per difference.
func Check(r *Result, exp []Expectation) []string {
	want := map[string]Expectation{}
	var problems []string
	compile := false
	for _, e := range exp {
		if e.Suite != r.Suite {
			continue
		}
		if e.Outcome == NoCompile {
			compile = true
			continue
		}
		want[e.Test] = e
	}
	if r.BuildError != "" {
		if !compile {
			problems = append(problems, r.Summary())
		}
		return problems
	}
	if compile {
		problems = append(problems, fmt.Sprintf("%s compiles now: replace its \"compile\" line in expected.txt by the tests' expectations", r.Suite))
	}
	var expectedFail func(name string) bool
	expectedFail = func(name string) bool {
		// A test expected to fail covers its subtests.
		for p := name; ; {
			if e, ok := want[p]; ok && e.Outcome == Fail {
				return true
			}
			i := strings.LastIndex(p, "/")
			if i < 0 {
				break
			}
			p = p[:i]
		}
		subs := 0
		for sub := range r.Failures {
			if strings.HasPrefix(sub, name+"/") && !strings.Contains(sub[len(name)+1:], "/") {
				subs++
				if !expectedFail(sub) {
					return false
				}
			}
		}
		return subs > 0
	}
	for name, out := range r.Failures {
		if !expectedFail(name) {
			problems = append(problems, fmt.Sprintf("%s %s failed, not in expected.txt:\n%s", r.Suite, name, out))
		}
	}
	for name, out := range r.Skips {
		if e, ok := want[name]; !ok || e.Outcome != Skip {
			problems = append(problems, fmt.Sprintf("%s %s skipped, not in expected.txt:\n%s", r.Suite, name, out))
		}
	}
	for name, e := range want {
		switch {
		case e.Outcome == Fail && r.Failures[name] == "" && !hasKey(r.Failures, name):
			problems = append(problems, fmt.Sprintf("%s %s passes now: remove it from expected.txt (%s)", r.Suite, name, e.Reason))
		case e.Outcome == Skip && !hasKey(r.Skips, name):
			problems = append(problems, fmt.Sprintf("%s %s was expected to be skipped but was not run as a skip", r.Suite, name))
		}
	}
	slices.Sort(problems)
	return problems
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }
