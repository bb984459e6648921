//go:build e2e

package e2e

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// delayProxy forwards TCP connections to target and delays every byte by
// delay in each direction, as a network with 2×delay of round-trip time
// would: a delay line, not a sleep per chunk, so throughput is limited only
// by how much the two ends keep in flight (there is no netem on this VM).
type delayProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// startDelayProxy listens on the first free port of addrs (the laptop guard
// lets laptops reach 10.201.0.1:16443-16499) and stops when the test ends.
func startDelayProxy(t *testing.T, addrs []string, target string, delay time.Duration) *delayProxy {
	t.Helper()
	var ln net.Listener
	var err error
	for _, a := range addrs {
		if ln, err = net.Listen("tcp", a); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("delay proxy: %v", err)
	}
	p := &delayProxy{ln: ln, target: target, delay: delay, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *delayProxy) addr() string { return p.ln.Addr().String() }

func (p *delayProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *delayProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *delayProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.track(c, true)
			defer p.track(c, false)
			defer c.Close()
			u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				return
			}
			p.track(u, true)
			defer p.track(u, false)
			defer u.Close()
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); delayCopy(u, c, p.delay) }()
			go func() { defer wg.Done(); delayCopy(c, u, p.delay) }()
			wg.Wait()
		}()
	}
}

// delayCopy copies src to dst, each chunk written delay after it was read.
// A reader stamps chunks into a queue and a writer releases them when due,
// so many chunks are in flight at once and order is kept. The queue's bound
// is backpressure: a full queue stops reading, and TCP flow control does the
// rest.
func delayCopy(dst, src net.Conn, delay time.Duration) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	q := make(chan chunk, 8192)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer close(q)
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case q <- chunk{append([]byte(nil), buf[:n]...), time.Now().Add(delay)}:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		if d := time.Until(c.due); d > 0 {
			// Sleep: the simulated link's one-way delay: each chunk leaves
			// when it is due, which is the point of this proxy.
			time.Sleep(d)
		}
		if _, err := dst.Write(c.b); err != nil {
			src.Close() // the other end is gone: stop reading too
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}
