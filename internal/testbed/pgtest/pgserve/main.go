// Command pgserve starts a throwaway PostgreSQL server, prints its URL on
// one line, and serves until its standard input closes or it gets SIGINT
// or SIGTERM; then it stops the server and removes its data. Scripts that
// run several test binaries against one server use it (for example
// scripts/instructions, whose binaries run under valgrind and must not
// start a server of their own).
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/runpool/runpool/internal/testbed/pgtest"
)

func main() {
	srv, stop, err := pgtest.StartEmbedded(pgtest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgserve:", err)
		os.Exit(1)
	}
	fmt.Println(srv.URL())
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-done:
	case <-sig:
	}
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgserve:", err)
		os.Exit(1)
	}
}
