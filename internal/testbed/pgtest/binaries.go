package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// installHint is the one fix we suggest; CI (.ci/run) applies the same one.
const installHint = "install with `apt-get install -y postgresql` (Debian)"

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// findBinDir locates a directory holding initdb and postgres, in the same order as .ci/run:
// pg_config --bindir, then the highest /usr/lib/postgresql/*/bin, then initdb on PATH.
func findBinDir() (string, error) {
	binOnce.Do(func() {
		var candidates []string
		// pg_config may come from libpq-dev without a server, so every candidate is checked for initdb.
		if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
			candidates = append(candidates, strings.TrimSpace(string(out)))
		}
		candidates = append(candidates, debianBinDirs()...)
		if p, err := exec.LookPath("initdb"); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				candidates = append(candidates, filepath.Dir(real))
			}
			candidates = append(candidates, filepath.Dir(p))
		}
		for _, dir := range candidates {
			if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "postgres")) {
				binDir = dir
				return
			}
		}
		binErr = errors.New("pgtest: PostgreSQL server binaries (initdb, postgres) not found via pg_config --bindir, " +
			"/usr/lib/postgresql/*/bin or PATH: " + installHint)
	})
	return binDir, binErr
}

// debianBinDirs returns /usr/lib/postgresql/*/bin, highest major version first.
func debianBinDirs() []string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) []int {
		var v []int
		for _, part := range strings.Split(filepath.Base(filepath.Dir(dir)), ".") {
			n, _ := strconv.Atoi(part)
			v = append(v, n)
		}
		return v
	}
	sort.Slice(dirs, func(i, j int) bool {
		a, b := version(dirs[i]), version(dirs[j])
		for k := 0; k < len(a) && k < len(b); k++ {
			if a[k] != b[k] {
				return a[k] > b[k]
			}
		}
		return len(a) > len(b)
	})
	return dirs
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// serverCredential returns the credential to run initdb and postgres with: nil normally, and the
// "postgres" OS user when we are root, because postgres refuses to run as root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs an OS user %q to run the server as (%v): %s", "postgres", err, installHint)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: bad uid/gid %q/%q for OS user postgres", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}
