package sockpeek

import (
	"net"
	"testing"
	"time"
)

func pair(t *testing.T) (client, server net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func eventually(t *testing.T, s *Socket, want State) {
	t.Helper()
	for range 100 {
		if s.Look() == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("Look = %v, want %v", s.Look(), want)
}

func TestLook(t *testing.T) {
	c, srv := pair(t)
	var s Socket
	if s.Look() != Quiet {
		t.Fatal("zero Socket not Quiet")
	}
	s.Init(c)
	if s.Look() != Quiet {
		t.Fatal("idle socket not Quiet")
	}
	srv.Write([]byte("E"))
	eventually(t, &s, Pending)
	if s.Look() != Pending { // a peek consumes nothing
		t.Fatal("peek consumed the byte")
	}
	c.Read(make([]byte, 1))
	srv.Close()
	eventually(t, &s, Closed)
}

func TestLookAllocatesNothing(t *testing.T) {
	c, _ := pair(t)
	var s Socket
	s.Init(c)
	if n := testing.AllocsPerRun(100, func() { s.Look() }); n != 0 {
		t.Fatalf("Look allocates %v times", n)
	}
}

// A goroutine parked in a blocking read holds the descriptor's read lock
// (pgconn's background reader does so on an idle connection); Look must
// answer at once rather than wait for the next byte.
func TestLookDoesNotWaitForAParkedReader(t *testing.T) {
	c, srv := pair(t)
	var s Socket
	s.Init(c)
	go c.Read(make([]byte, 1)) // parked until srv writes
	time.Sleep(50 * time.Millisecond)
	done := make(chan State, 1)
	go func() { done <- s.Look() }()
	select {
	case st := <-done:
		if st != Quiet {
			t.Fatalf("Look = %v, want Quiet", st)
		}
	case <-time.After(5 * time.Second):
		srv.Write([]byte("x")) // unpark the reader so the test can end
		<-done
		t.Fatal("Look waited for the parked reader")
	}
}
