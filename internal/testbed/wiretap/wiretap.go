// Package wiretap is a TCP forwarder for tests that reads the PostgreSQL
// protocol a client sends and records what an external pooler would
// look at (RDS Proxy pins a client to one server connection for session
// state): the SQL texts of simple queries (Query) and of extended-
// protocol statements (Parse), and the names Parse gives statements
// (a named prepared statement lives on one server session).
package wiretap

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
)

// Tap listens on 127.0.0.1 and forwards to its target, recording.
type Tap struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	texts []string // every SQL text sent, in order
	named []string // the names Parse gave statements (non-empty ones)
	wg    sync.WaitGroup
	conns []net.Conn
}

// Start listens on 127.0.0.1:0 and forwards to target.
func Start(target string) (*Tap, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &Tap{ln: ln, target: target}
	t.wg.Add(1)
	go t.accept()
	return t, nil
}

// Addr is the tap's address, "127.0.0.1:PORT".
func (t *Tap) Addr() string { return t.ln.Addr().String() }

// Texts returns the SQL texts sent so far (simple queries and Parse).
func (t *Tap) Texts() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.texts...)
}

// Named returns the non-empty statement names Parse messages carried.
func (t *Tap) Named() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.named...)
}

// Close stops listening and closes every connection.
func (t *Tap) Close() error {
	err := t.ln.Close()
	t.mu.Lock()
	for _, c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	return err
}

func (t *Tap) accept() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", t.target)
		if err != nil {
			c.Close()
			continue
		}
		t.mu.Lock()
		t.conns = append(t.conns, c, s)
		t.mu.Unlock()
		t.wg.Add(2)
		go func() { defer t.wg.Done(); io.Copy(c, s); c.Close() }()
		go func() { defer t.wg.Done(); t.read(c, s); s.Close() }()
	}
}

// read forwards the client's bytes to s, message by message, recording.
func (t *Tap) read(c, s net.Conn) {
	// The startup phase: length-prefixed packets without a type byte
	// (an SSL request, answered by one byte, then the startup packet).
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		body := make([]byte, max(n-8, 0))
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		if _, err := s.Write(append(hdr[:], body...)); err != nil {
			return
		}
		code := binary.BigEndian.Uint32(hdr[4:])
		if code != 80877103 && code != 80877104 { // not an SSL or GSS request
			break
		}
	}
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[1:]))
		body := make([]byte, max(n-4, 0))
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		t.record(hdr[0], body)
		if _, err := s.Write(append(hdr[:], body...)); err != nil {
			return
		}
	}
}

func (t *Tap) record(typ byte, body []byte) {
	switch typ {
	case 'Q':
		text, _, _ := cstring(body)
		t.mu.Lock()
		t.texts = append(t.texts, text)
		t.mu.Unlock()
	case 'P':
		name, rest, err := cstring(body)
		if err != nil {
			return
		}
		text, _, _ := cstring(rest)
		t.mu.Lock()
		t.texts = append(t.texts, text)
		if name != "" {
			t.named = append(t.named, name)
		}
		t.mu.Unlock()
	}
}

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) (string, []byte, error) {
	i := strings.IndexByte(string(b), 0)
	if i < 0 {
		return "", nil, errors.New("wiretap: unterminated string")
	}
	return string(b[:i]), b[i+1:], nil
}
