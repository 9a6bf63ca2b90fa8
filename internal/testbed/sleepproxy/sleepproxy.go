// Package sleepproxy stands in, in tests, for a database that scales to
// zero (Neon, Aurora Serverless v2 with auto-pause, Supabase): a TCP
// proxy in front of a real server that falls asleep once no client
// connection has been open for SleepAfter, and on the next connection
// attempt wakes up, which takes WakeTime. While it wakes, each new
// connection is answered as the provider answers it: with an
// ErrorResponse carrying the provider's message (Neon's proxy: "Couldn't
// connect to compute node"), or closed at once (a refused or reset
// connection). Awake, it forwards bytes both ways.
package sleepproxy

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// WakeMessage is Neon's answer to a connection while its compute node
// is not reachable (starting up from suspension).
const WakeMessage = "Couldn't connect to compute node"

// Config describes a proxy.
type Config struct {
	Target     string        // the server, "127.0.0.1:PORT"
	SleepAfter time.Duration // asleep once no connection has been open this long
	WakeTime   time.Duration // how long waking takes, from the first attempt
	// Refuse closes connections while waking instead of answering them
	// with an ErrorResponse carrying WakeMessage.
	Refuse bool
}

// Proxy listens on 127.0.0.1 and forwards to Config.Target.
type Proxy struct {
	cfg Config
	ln  net.Listener

	mu      sync.Mutex
	open    int       // connections open
	idleAt  time.Time // when the last connection closed (or the proxy started)
	waking  time.Time // when waking began; zero when awake or asleep
	asleep  bool
	flows   map[net.Conn]struct{}
	slept   int // times it fell asleep
	refused atomic.Int64
	passed  atomic.Int64
	wg      sync.WaitGroup
}

// Start listens on 127.0.0.1:0 and begins forwarding, awake.
func Start(cfg Config) (*Proxy, error) {
	if cfg.Target == "" {
		return nil, errors.New("sleepproxy: Config.Target is empty")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, ln: ln, idleAt: time.Now(), flows: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address, "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Asleep reports whether the database sleeps now.
func (p *Proxy) Asleep() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.settle(time.Now())
	return p.asleep
}

// Slept is how many times it fell asleep.
func (p *Proxy) Slept() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.settle(time.Now())
	return p.slept
}

// Passed is how many connections it forwarded; Refused how many it
// answered with the wake-up error or closed while waking.
func (p *Proxy) Passed() int64  { return p.passed.Load() }
func (p *Proxy) Refused() int64 { return p.refused.Load() }

// Open is how many forwarded connections are open.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.flows {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// settle falls asleep when no connection has been open for SleepAfter;
// p.mu held.
func (p *Proxy) settle(now time.Time) {
	if !p.asleep && p.waking.IsZero() && p.open == 0 && now.Sub(p.idleAt) >= p.cfg.SleepAfter {
		p.asleep = true
		p.slept++
	}
}

// admit decides on a new connection at now: forward it, or refuse it
// while the database wakes (the first attempt on a sleeping one starts
// the wake-up).
func (p *Proxy) admit(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.settle(now)
	if p.asleep {
		p.asleep = false
		p.waking = now
	}
	if !p.waking.IsZero() {
		if now.Sub(p.waking) < p.cfg.WakeTime {
			return false
		}
		p.waking = time.Time{}
	}
	p.open++
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.admit(time.Now()) {
			p.refused.Add(1)
			p.wg.Add(1)
			go p.refuse(c)
			continue
		}
		p.passed.Add(1)
		s, err := net.DialTimeout("tcp", p.cfg.Target, 5*time.Second)
		if err != nil {
			c.Close()
			p.closed()
			continue
		}
		p.mu.Lock()
		p.flows[c], p.flows[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.forward(c, s)
	}
}

// forward copies both ways until either side ends.
func (p *Proxy) forward(c, s net.Conn) {
	defer p.wg.Done()
	done := make(chan struct{}, 2)
	go func() { io.Copy(s, c); done <- struct{}{} }()
	go func() { io.Copy(c, s); done <- struct{}{} }()
	<-done
	c.Close()
	s.Close()
	<-done
	p.mu.Lock()
	delete(p.flows, c)
	delete(p.flows, s)
	p.mu.Unlock()
	p.closed()
}

func (p *Proxy) closed() {
	p.mu.Lock()
	p.open--
	if p.open == 0 {
		p.idleAt = time.Now()
	}
	p.mu.Unlock()
}

// refuse answers a connection while the database wakes: closed at once
// (Refuse), or, after reading its startup packet (answering an SSL
// request with 'N' first), an ErrorResponse with WakeMessage.
func (p *Proxy) refuse(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	if p.cfg.Refuse {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset, as a resuming endpoint gives
		}
		return
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		code := binary.BigEndian.Uint32(hdr[4:])
		if n < 8 || n > 10000 {
			return
		}
		if _, err := io.CopyN(io.Discard, c, int64(n-8)); err != nil {
			return
		}
		if code == 80877103 || code == 80877104 { // SSLRequest, GSSENCRequest
			if _, err := c.Write([]byte{'N'}); err != nil {
				return
			}
			continue
		}
		break
	}
	c.Write(errorResponse("FATAL", "XX000", WakeMessage))
}

// errorResponse encodes a protocol ErrorResponse.
func errorResponse(severity, code, msg string) []byte {
	var body []byte
	for _, f := range []struct {
		t byte
		v string
	}{{'S', severity}, {'V', severity}, {'C', code}, {'M', msg}} {
		body = append(body, f.t)
		body = append(body, f.v...)
		body = append(body, 0)
	}
	body = append(body, 0)
	out := []byte{'E', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(len(body)+4))
	return append(out, body...)
}
