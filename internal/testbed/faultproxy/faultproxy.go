// Package faultproxy is a TCP proxy for tests that does to idle flows what
// the middleboxes in front of serverless instances do: after a flow has
// carried nothing for IdleTimeout it is forgotten, either silently
// (Blackhole: Cloud NAT and Google's front ends drop the packets of a flow
// they no longer know) or loudly (Reset: an AWS NAT gateway or NLB answers
// the next packet with a reset). In both modes the server side is left
// open, dangling, as a real NAT leaves the server's backend: only the
// server's own timeouts reclaim it. It can also add latency and cut every
// flow on demand.
//
// Limits: a userspace proxy sees bytes, not packets. TCP keepalives are
// answered by this machine's kernel on both sides, so they neither keep a
// flow alive here (the idle clock counts payload only) nor detect a black
// hole; and a black-holed write succeeds because the proxy's kernel
// acknowledges it. What a client observes is what matters for the tests:
// its reads hang until its own deadline.
package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what happens to a flow that idled past IdleTimeout.
type Mode int32

const (
	// Pass never forgets a flow.
	Pass Mode = iota
	// Blackhole forgets the flow silently: every later byte, either way,
	// is read and dropped; both sockets stay open.
	Blackhole
	// Reset forgets the flow loudly: on its next byte, either way, the
	// client side is reset (RST); the server side stays open.
	Reset
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Blackhole:
		return "blackhole"
	case Reset:
		return "reset"
	}
	return "unknown"
}

// Config describes a proxy.
type Config struct {
	Target      string        // address to forward to, e.g. "127.0.0.1:5432"
	Mode        Mode          // what happens to idle flows
	IdleTimeout time.Duration // idle limit per flow; 0 means never
	Latency     time.Duration // added to every chunk, each direction
}

// Proxy listens on 127.0.0.1 and forwards to Config.Target.
type Proxy struct {
	ln      net.Listener
	target  atomic.Pointer[string]
	mode    atomic.Int32
	idle    atomic.Int64
	latency atomic.Int64
	dropped atomic.Int64

	mu     sync.Mutex // guards flows and closed
	flows  map[*flow]struct{}
	closed bool
	wg     sync.WaitGroup
}

// flow is one proxied connection.
type flow struct {
	client, server *net.TCPConn
	last           atomic.Int64 // UnixNano of the last byte forwarded
	forgotten      atomic.Int32 // 0, or the Mode it was forgotten in
	clientDone     atomic.Bool
	ended          atomic.Int32 // directions that stopped; at 2 the flow is gone
}

// Start listens on 127.0.0.1:0 and begins forwarding.
func Start(cfg Config) (*Proxy, error) {
	if cfg.Target == "" {
		return nil, errors.New("faultproxy: Config.Target is empty")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, flows: make(map[*flow]struct{})}
	p.target.Store(&cfg.Target)
	p.mode.Store(int32(cfg.Mode))
	p.idle.Store(int64(cfg.IdleTimeout))
	p.latency.Store(int64(cfg.Latency))
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address, "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// SetTarget sends new flows to addr, as a load balancer or a DNS name
// that fails over does; flows already open stay with their server.
func (p *Proxy) SetTarget(addr string) { p.target.Store(&addr) }

// SetMode changes what happens to flows that idle from now on.
func (p *Proxy) SetMode(m Mode) { p.mode.Store(int32(m)) }

// SetIdleTimeout changes the idle limit, for existing flows too.
func (p *Proxy) SetIdleTimeout(d time.Duration) { p.idle.Store(int64(d)) }

// SetLatency changes the added latency.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// Dropped is the number of flows forgotten so far.
func (p *Proxy) Dropped() int { return int(p.dropped.Load()) }

// Flows is the number of flows whose client side is still open.
func (p *Proxy) Flows() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for f := range p.flows {
		if !f.clientDone.Load() {
			n++
		}
	}
	return n
}

// Forget forgets every current flow now, as if each had idled past the
// timeout, in the current mode (Pass counts as Blackhole here).
func (p *Proxy) Forget() {
	m := Mode(p.mode.Load())
	if m == Pass {
		m = Blackhole
	}
	flows := p.snapshot()
	// Every flow is forgotten before any client learns it: a client
	// reset first could otherwise get a byte through a flow not yet
	// forgotten (a caller whose query failed on the first reset probing
	// a sibling the loop had not reached).
	for _, f := range flows {
		p.forget(f, m)
	}
	if m == Reset {
		for _, f := range flows {
			p.resetClient(f)
		}
	}
}

// Expire forgets every current flow as its idle clock would, in the
// current mode (Pass counts as Blackhole here): unlike Forget, a Reset
// flow's client learns it only at the flow's next byte. Tests that scale
// a NAT's timeout down to a second use it to end the idle flows at a
// moment of their choosing, rather than an idle clock that would also
// forget a flow whose request waits that long on a loaded machine.
func (p *Proxy) Expire() {
	m := Mode(p.mode.Load())
	if m == Pass {
		m = Blackhole
	}
	for _, f := range p.snapshot() {
		p.forget(f, m)
	}
}

// CutAll closes both sides of every flow now.
func (p *Proxy) CutAll() {
	for _, f := range p.snapshot() {
		f.clientDone.Store(true)
		f.client.Close()
		f.server.Close()
	}
}

// Close stops listening and closes every socket, dangling server sides
// included, then waits for its goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	for _, f := range p.snapshot() {
		f.clientDone.Store(true)
		f.client.Close()
		f.server.Close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) snapshot() []*flow {
	p.mu.Lock()
	defer p.mu.Unlock()
	fs := make([]*flow, 0, len(p.flows))
	for f := range p.flows {
		fs = append(fs, f)
	}
	return fs
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", *p.target.Load(), 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		f := &flow{client: c.(*net.TCPConn), server: s.(*net.TCPConn)}
		f.last.Store(time.Now().UnixNano())
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.flows[f] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(f, f.client, f.server, true)
		go p.pipe(f, f.server, f.client, false)
	}
}

// pipe forwards src to dst until src fails. fromClient tells the
// direction, since only the client side is ever closed by a fault.
func (p *Proxy) pipe(f *flow, src, dst *net.TCPConn, fromClient bool) {
	defer p.wg.Done()
	defer p.retire(f)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.forward(f, dst, buf[:n]) {
			if Mode(f.forgotten.Load()) == Reset {
				p.resetClient(f)
				if !fromClient {
					// The server side dangles: keep draining it so the
					// server never blocks, until Close.
					io.Copy(io.Discard, src)
				}
				return
			}
		}
		if err != nil {
			if fromClient {
				// The client went away: a NAT would forget the flow; here
				// the server side learns it only for a clean close.
				f.clientDone.Store(true)
				if f.forgotten.Load() == 0 {
					dst.CloseWrite()
				}
			} else if f.forgotten.Load() == 0 {
				dst.CloseWrite()
			}
			return
		}
	}
}

// forward delivers b unless the flow is, or now becomes, forgotten.
func (p *Proxy) forward(f *flow, dst *net.TCPConn, b []byte) bool {
	now := time.Now().UnixNano()
	if idle := p.idle.Load(); f.forgotten.Load() == 0 && idle > 0 && now-f.last.Load() > idle {
		if m := Mode(p.mode.Load()); m != Pass {
			p.forget(f, m)
		}
	}
	if f.forgotten.Load() != 0 {
		return false // dropped
	}
	if d := p.latency.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	if _, err := dst.Write(b); err != nil {
		return true // dst's own reader notices
	}
	f.last.Store(time.Now().UnixNano())
	return true
}

func (p *Proxy) forget(f *flow, m Mode) {
	if f.forgotten.CompareAndSwap(0, int32(m)) {
		p.dropped.Add(1)
	}
}

// resetClient answers the client with a reset, leaving the server side.
func (p *Proxy) resetClient(f *flow) {
	if f.clientDone.Swap(true) {
		return
	}
	f.client.SetLinger(0)
	f.client.Close()
}

// retire closes and forgets a flow once both of its directions ended. A
// forgotten flow's server side ends only when the server closes it (or at
// Close), which is what leaves it dangling meanwhile.
func (p *Proxy) retire(f *flow) {
	if f.ended.Add(1) < 2 {
		return
	}
	f.clientDone.Store(true)
	f.client.Close()
	f.server.Close()
	p.mu.Lock()
	delete(p.flows, f)
	p.mu.Unlock()
}
