package faultproxy

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// echoServer echoes every connection; serverSides receives each accepted
// connection so tests can watch whether the server side stays open.
func echoServer(t *testing.T) (addr string, serverSides chan net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	serverSides = make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serverSides <- c
			go io.Copy(c, c)
		}
	}()
	return ln.Addr().String(), serverSides
}

func start(t *testing.T, cfg Config) *Proxy {
	p, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func roundTrip(c net.Conn, msg string, d time.Duration) error {
	c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	if err == nil && string(buf) != msg {
		return errors.New("echo mismatch")
	}
	return err
}

func dial(t *testing.T, p *Proxy) net.Conn {
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestPass(t *testing.T) {
	target, _ := echoServer(t)
	p := start(t, Config{Target: target, IdleTimeout: 100 * time.Millisecond})
	c := dial(t, p)
	if err := roundTrip(c, "hello", time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // Pass mode: idling is fine
	if err := roundTrip(c, "again", time.Second); err != nil {
		t.Fatal(err)
	}
}

// serverOpen reports whether the server side has not seen EOF.
func serverOpen(s net.Conn) bool {
	s.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var b [1]byte
	_, err := s.Read(b[:])
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestBlackhole(t *testing.T) {
	target, sides := echoServer(t)
	p := start(t, Config{Target: target, Mode: Blackhole, IdleTimeout: 100 * time.Millisecond})
	c := dial(t, p)
	if err := roundTrip(c, "hello", time.Second); err != nil {
		t.Fatal(err)
	}
	srv := <-sides
	time.Sleep(400 * time.Millisecond)
	err := roundTrip(c, "lost", 300*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("after idling into a black hole: %v, want a read timeout", err)
	}
	if p.Dropped() != 1 {
		t.Fatalf("Dropped = %d, want 1", p.Dropped())
	}
	// A new flow works; the old server side still dangles.
	if err := roundTrip(dial(t, p), "fresh", time.Second); err != nil {
		t.Fatalf("new flow: %v", err)
	}
	c.Close()
	time.Sleep(100 * time.Millisecond)
	if !serverOpen(srv) {
		t.Fatal("the server side of a black-holed flow was closed")
	}
	// Close ends the dangling side too.
	p.Close()
	srv.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(srv); err != nil {
		t.Fatalf("server side after Close: %v, want EOF", err)
	}
}

func TestReset(t *testing.T) {
	target, sides := echoServer(t)
	p := start(t, Config{Target: target, Mode: Reset, IdleTimeout: 100 * time.Millisecond})
	c := dial(t, p)
	if err := roundTrip(c, "hello", time.Second); err != nil {
		t.Fatal(err)
	}
	srv := <-sides
	time.Sleep(400 * time.Millisecond)
	err := roundTrip(c, "reset", time.Second)
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("after idling past a resetting NAT: %v, want ECONNRESET", err)
	}
	if !serverOpen(srv) {
		t.Fatal("the server side of a reset flow was closed")
	}
}

func TestForgetAndCutAll(t *testing.T) {
	target, _ := echoServer(t)
	p := start(t, Config{Target: target, Mode: Reset})
	c := dial(t, p)
	if err := roundTrip(c, "hello", time.Second); err != nil {
		t.Fatal(err)
	}
	p.Forget()
	if err := roundTrip(c, "x", time.Second); err == nil {
		t.Fatal("a forgotten flow still forwards")
	}
	c2 := dial(t, p)
	if err := roundTrip(c2, "hello", time.Second); err != nil {
		t.Fatal(err)
	}
	p.CutAll()
	c2.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("a cut flow still reads")
	}
}

func TestLatency(t *testing.T) {
	target, _ := echoServer(t)
	p := start(t, Config{Target: target, Latency: 50 * time.Millisecond})
	c := dial(t, p)
	start := time.Now()
	if err := roundTrip(c, "slow", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 100*time.Millisecond {
		t.Fatalf("round trip %v, want at least 2 x 50ms", rtt)
	}
}
