package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"golang.org/x/sync/errgroup"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// Ports select what testHandler does with a flow.
const (
	portEcho   = 80 // TCP and UDP: echo everything back; TCP half-closes after EOF
	portSink   = 81 // TCP: read to EOF, then reply with the byte count
	portSource = 82 // TCP: read an 8-byte count, write that many bytes
	portBlock  = 83 // TCP and UDP: wait for ctx, touch nothing
	portAbort  = 84 // TCP: read a byte, write "partial", then reset the connection
)

const testMTU = 1500

var (
	clientV4 = netip.MustParseAddr("10.0.0.2")
	clientV6 = netip.MustParseAddr("fd00::2")
)

// testHandler plays the cluster side: it serves each flow by destination
// port and records what it saw.
type testHandler struct {
	active  atomic.Int64 // handler calls that have not returned
	started atomic.Int64

	mu   sync.Mutex
	seen map[netip.AddrPort]netip.AddrPort // src -> dst

	udpEnded chan netip.AddrPort // src of UDP flows whose handler returned
	running  chan struct{}       // one per handler call, once it counts as active
}

func newTestHandler() *testHandler {
	return &testHandler{
		seen:     make(map[netip.AddrPort]netip.AddrPort),
		udpEnded: make(chan netip.AddrPort, 100),
		running:  make(chan struct{}, 1000),
	}
}

func (h *testHandler) record(src, dst netip.AddrPort) {
	h.started.Add(1)
	h.mu.Lock()
	h.seen[src] = dst
	h.mu.Unlock()
	select {
	case h.running <- struct{}{}:
	default: // a test that does not read it
	}
}

func (h *testHandler) dstOf(src netip.AddrPort) (netip.AddrPort, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	dst, ok := h.seen[src]
	return dst, ok
}

func (h *testHandler) HandleTCP(ctx context.Context, conn net.Conn, src, dst netip.AddrPort) {
	h.active.Add(1)
	defer h.active.Add(-1)
	h.record(src, dst)
	switch dst.Port() {
	case portEcho:
		if _, err := io.Copy(conn, conn); err != nil {
			return
		}
		conn.(interface{ CloseWrite() error }).CloseWrite()
		// Wait for the client to close, so the test sees every byte
		// before the stack closes conn.
		io.Copy(io.Discard, conn)
	case portSink:
		n, err := io.Copy(io.Discard, conn)
		if err != nil {
			return
		}
		conn.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
	case portSource:
		var hdr [8]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return
		}
		buf := make([]byte, 64<<10)
		for left := binary.BigEndian.Uint64(hdr[:]); left > 0; {
			n := min(left, uint64(len(buf)))
			if _, err := conn.Write(buf[:n]); err != nil {
				return
			}
			left -= n
		}
	case portBlock:
		<-ctx.Done()
	case portAbort:
		if _, err := conn.Read(make([]byte, 1)); err != nil {
			return
		}
		conn.Write([]byte("partial"))
		conn.(interface{ Abort() }).Abort()
	}
}

func (h *testHandler) HandleUDP(ctx context.Context, conn net.Conn, src, dst netip.AddrPort) {
	h.active.Add(1)
	defer h.active.Add(-1)
	h.record(src, dst)
	defer func() {
		select {
		case h.udpEnded <- src:
		default:
		}
	}()
	if dst.Port() == portBlock {
		<-ctx.Done()
		return
	}
	buf := make([]byte, 65535)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		if _, err := conn.Write(buf[:n]); err != nil {
			return
		}
	}
}

// pumpDevice stands between the Stack and netstack's in-memory device.
// Run closes its device on the way out, but closing netstack's device while
// the client's gVisor stack is still sending panics (send on a closed
// channel), so the test closes the real one itself once the client is
// quiet. It also reports a batch size above 1, so the Stack's batching runs.
type pumpDevice struct {
	tun.Device
	pkts      chan []byte
	closed    chan struct{}
	closeOnce sync.Once
	pumpDone  chan struct{}
	pool      sync.Pool
}

const pumpBatch = 8

func newPumpDevice(dev tun.Device) *pumpDevice {
	d := &pumpDevice{
		Device:   dev,
		pkts:     make(chan []byte, 512),
		closed:   make(chan struct{}),
		pumpDone: make(chan struct{}),
		pool:     sync.Pool{New: func() any { return make([]byte, testMTU) }},
	}
	go d.pump()
	return d
}

func (d *pumpDevice) pump() {
	defer close(d.pumpDone)
	bufs := [][]byte{make([]byte, 65535)}
	sizes := []int{0}
	for {
		n, err := d.Device.Read(bufs, sizes, 0)
		if err != nil {
			return
		}
		if n == 0 {
			continue
		}
		p := d.pool.Get().([]byte)[:0]
		p = append(p, bufs[0][:sizes[0]]...)
		select {
		case d.pkts <- p:
		case <-d.closed:
		}
	}
}

func (d *pumpDevice) BatchSize() int { return pumpBatch }

func (d *pumpDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var p []byte
	select {
	case p = <-d.pkts:
	case <-d.closed:
		return 0, os.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset:], p)
		d.pool.Put(p[:cap(p)])
		n++
		if n == len(bufs) {
			return n, nil
		}
		select {
		case p = <-d.pkts:
		default:
			return n, nil
		}
	}
}

func (d *pumpDevice) Write(bufs [][]byte, offset int) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	default:
	}
	return d.Device.Write(bufs, offset)
}

func (d *pumpDevice) Close() error {
	d.closeOnce.Do(func() { close(d.closed) })
	return nil
}

// harness is a Stack reading a netstack device whose *netstack.Net plays
// the laptop's applications.
type harness struct {
	client  *netstack.Net
	handler *testHandler
	cancel  context.CancelFunc
	runErr  chan error
	stopped bool
}

func startHarness(tb testing.TB, modify func(*Config)) *harness {
	tb.Helper()
	dev, client, err := netstack.CreateNetTUN([]netip.Addr{clientV4, clientV6}, nil, testMTU)
	if err != nil {
		tb.Fatalf("CreateNetTUN: %v", err)
	}
	pd := newPumpDevice(dev)
	h := &harness{client: client, handler: newTestHandler(), runErr: make(chan error, 1)}
	cfg := Config{Device: pd, Handler: h.handler}
	if modify != nil {
		modify(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.runErr <- s.Run(ctx) }()
	tb.Cleanup(func() {
		h.stop(tb)
		dev.Close()
		<-pd.pumpDone
	})
	return h
}

// stop cancels Run and waits for it, failing tb if it errs or hangs.
func (h *harness) stop(tb testing.TB) {
	tb.Helper()
	if h.stopped {
		return
	}
	h.stopped = true
	h.cancel()
	select {
	case err := <-h.runErr:
		if err != nil {
			tb.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		tb.Fatal("Run did not return after cancel")
	}
}

func (h *harness) dialTCP(tb testing.TB, dst netip.AddrPort) net.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := h.client.DialContextTCPAddrPort(ctx, dst)
	if err != nil {
		tb.Fatalf("dial %v: %v", dst, err)
	}
	return c
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// echoTCP writes payload to c while reading the echo back, then half-closes
// and checks the echo ends exactly there.
func echoTCP(c net.Conn, payload []byte) error {
	c.SetDeadline(time.Now().Add(60 * time.Second))
	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		writeErr <- err
	}()
	got, err := io.ReadAll(c)
	if werr := <-writeErr; werr != nil {
		return fmt.Errorf("write: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("echo differs: sent %d bytes, got %d", len(payload), len(got))
	}
	return nil
}

func TestTCPEcho(t *testing.T) {
	h := startHarness(t, nil)
	payload := randomBytes(4 << 20)
	for _, tc := range []struct {
		name string
		dst  netip.AddrPort
	}{
		{"IPv4", netip.MustParseAddrPort("10.96.0.5:80")},
		{"IPv6", netip.MustParseAddrPort("[fd00:10:96::5]:80")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dialTCP(t, tc.dst)
			defer c.Close()
			if err := echoTCP(c, payload); err != nil {
				t.Fatal(err)
			}
			src := netip.MustParseAddrPort(c.LocalAddr().String())
			if dst, ok := h.handler.dstOf(src); !ok || dst != tc.dst {
				t.Errorf("handler saw flow from %v to %v (found %v), want to %v", src, dst, ok, tc.dst)
			}
		})
	}
}

// TestTCPAbort: a flow the handler aborts ends in a reset, which the laptop
// application tells apart from a clean end of stream.
func TestTCPAbort(t *testing.T) {
	h := startHarness(t, nil)
	c := h.dialTCP(t, netip.MustParseAddrPort("10.96.0.8:84"))
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read %q, then %v; want a connection reset", got, err)
	}
}

func TestTCPHalfClose(t *testing.T) {
	h := startHarness(t, nil)
	for _, dst := range []string{"10.96.0.7:81", "[fd00:10:96::7]:81"} {
		t.Run(dst, func(t *testing.T) {
			c := h.dialTCP(t, netip.MustParseAddrPort(dst))
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			const n = 300 << 10
			if _, err := c.Write(randomBytes(n)); err != nil {
				t.Fatal(err)
			}
			if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			// The handler only replies once it has seen EOF.
			reply, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read reply after CloseWrite: %v", err)
			}
			if len(reply) != 8 || binary.BigEndian.Uint64(reply) != n {
				t.Fatalf("reply = %x, want the count %d", reply, n)
			}
		})
	}
}

func TestTCPManyFlows(t *testing.T) {
	h := startHarness(t, nil)
	const flows = 200
	payload := randomBytes(32 << 10)
	var g errgroup.Group
	for i := range flows {
		g.Go(func() error {
			var dst netip.AddrPort
			if i%2 == 0 {
				dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 96, byte(i / 250), byte(1 + i%250)}), portEcho)
			} else {
				dst = netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("fd00:10:96::%x", i)), portEcho)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := h.client.DialContextTCPAddrPort(ctx, dst)
			if err != nil {
				return fmt.Errorf("dial %v: %w", dst, err)
			}
			defer c.Close()
			if err := echoTCP(c, payload); err != nil {
				return fmt.Errorf("flow %v: %w", dst, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := h.handler.started.Load(); got != flows {
		t.Errorf("handler saw %d flows, want %d", got, flows)
	}
}

func TestUDPEcho(t *testing.T) {
	h := startHarness(t, nil)
	for _, tc := range []struct {
		name string
		dst  netip.AddrPort
	}{
		{"IPv4", netip.MustParseAddrPort("10.96.0.10:80")},
		{"IPv6", netip.MustParseAddrPort("[fd00:10:96::a]:80")},
		{"IPv4 DNS", netip.MustParseAddrPort("10.96.0.10:53")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := h.client.DialUDPAddrPort(netip.AddrPort{}, tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 2000)
			for _, size := range []int{1, 100, 512, 1200, 1400} {
				msg := randomBytes(size)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("read echo of %d bytes: %v", size, err)
				}
				if !bytes.Equal(buf[:n], msg) {
					t.Fatalf("echo of %d bytes differs (got %d bytes)", size, n)
				}
			}
			src := netip.MustParseAddrPort(c.LocalAddr().String())
			if dst, ok := h.handler.dstOf(src); !ok || dst != tc.dst {
				t.Errorf("handler saw flow from %v to %v (found %v), want to %v", src, dst, ok, tc.dst)
			}
		})
	}
	if got := h.handler.started.Load(); got != 3 {
		t.Errorf("handler saw %d UDP flows, want one per test case (3)", got)
	}
}

// An idle UDP flow ends, and a datagram after it starts a new one.
func TestUDPIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	h := startHarness(t, func(c *Config) { c.UDPIdleTimeout = idle })
	c, err := h.client.DialUDPAddrPort(netip.AddrPort{}, netip.MustParseAddrPort("10.96.0.11:80"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 100)
	ping := func() {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("read echo: %v", err)
		}
	}
	ping()
	select {
	case <-h.handler.udpEnded:
	case <-time.After(10 * time.Second):
		t.Fatal("idle UDP flow did not end")
	}
	ping()
	if got := h.handler.started.Load(); got != 2 {
		t.Errorf("handler saw %d flows, want 2", got)
	}
}

// The idle timer on synctest's clock: traffic idle/3 apart keeps a flow
// alive past idle, and it ends exactly idle after the last datagram, or
// never once its context is done.
func TestCloseWhenIdle(t *testing.T) {
	const idle = 300 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		var last atomic.Int64
		last.Store(time.Now().UnixNano())
		ended := make(chan time.Time, 1)
		go closeWhenIdle(t.Context(), &last, idle, func() { ended <- time.Now() })
		for range 6 {
			time.Sleep(idle / 3)
			last.Store(time.Now().UnixNano())
		}
		synctest.Wait()
		select {
		case at := <-ended:
			t.Fatalf("flow ended at %v despite traffic", at)
		default:
		}
		quiet := time.Now()
		if at := <-ended; at.Sub(quiet) != idle {
			t.Errorf("flow ended %v after the last datagram, want %v", at.Sub(quiet), idle)
		}

		ctx, cancel := context.WithCancel(t.Context())
		go closeWhenIdle(ctx, &last, idle, func() { ended <- time.Now() })
		cancel()
		time.Sleep(2 * idle)
		synctest.Wait()
		select {
		case <-ended:
			t.Error("flow ended after its context was done")
		default:
		}
	})
}

// TestRunEndsFlows checks that cancelling Run ends every handler, whether
// it is blocked on its conn or only on ctx, and that none outlives Run.
func TestRunEndsFlows(t *testing.T) {
	h := startHarness(t, nil)
	var conns []io.Closer
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	want := 0
	for _, dst := range []string{"10.96.1.1:80", "10.96.1.1:83", "[fd00:10:96::1]:80", "[fd00:10:96::1]:83"} {
		for range 3 {
			c := h.dialTCP(t, netip.MustParseAddrPort(dst))
			conns = append(conns, c)
			want++
		}
	}
	for _, dst := range []string{"10.96.1.2:80", "10.96.1.2:83", "[fd00:10:96::2]:83"} {
		c, err := h.client.DialUDPAddrPort(netip.AddrPort{}, netip.MustParseAddrPort(dst))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		want++
	}
	timeout := time.After(10 * time.Second)
	for range want {
		select {
		case <-h.handler.running:
		case <-timeout:
			t.Fatalf("%d handlers running, want %d", h.handler.active.Load(), want)
		}
	}
	h.stop(t)
	if n := h.handler.active.Load(); n != 0 {
		t.Errorf("%d handlers still running after Run returned", n)
	}
}

// TestRunDeviceError checks that Run returns a device's read error and
// leaves no goroutine of its own or of its gVisor stack behind.
func TestRunDeviceError(t *testing.T) {
	// Earlier tests' client stacks may still be winding down: goleak
	// ignores them and retries until Run's own are gone.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	errBoom := errors.New("boom")
	dev := &failingDevice{err: errBoom}
	s, err := New(Config{Device: dev, Handler: newTestHandler(), MTU: testMTU})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); !errors.Is(err, errBoom) {
		t.Fatalf("Run = %v, want %v", err, errBoom)
	}
	if !dev.closed.Load() {
		t.Error("Run did not close the device")
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

type failingDevice struct {
	tun.Device // nil: calling anything else panics
	err        error
	closed     atomic.Bool
}

func (d *failingDevice) Read([][]byte, []int, int) (int, error) { return 0, d.err }
func (d *failingDevice) Write([][]byte, int) (int, error)       { return 0, os.ErrClosed }
func (d *failingDevice) MTU() (int, error)                      { return testMTU, nil }
func (d *failingDevice) BatchSize() int                         { return 1 }
func (d *failingDevice) Events() <-chan tun.Event               { return nil }
func (d *failingDevice) Close() error                           { d.closed.Store(true); return nil }

func TestNewRejects(t *testing.T) {
	dev := &failingDevice{}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no device", Config{Handler: newTestHandler()}},
		{"no handler", Config{Device: dev}},
		{"tiny MTU", Config{Device: dev, Handler: newTestHandler(), MTU: 100}},
		{"huge MTU", Config{Device: dev, Handler: newTestHandler(), MTU: 70000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Error("New succeeded")
			}
		})
	}
}

// BenchmarkTCPThroughput measures one TCP flow through the Stack in each
// direction, next to the same transfer over the kernel's loopback as the
// baseline to compare against.
func BenchmarkTCPThroughput(b *testing.B) {
	const chunk = 64 << 10
	upload := func(b *testing.B, c net.Conn) {
		buf := make([]byte, chunk)
		b.SetBytes(chunk)
		b.ResetTimer()
		for range b.N {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		c.(interface{ CloseWrite() error }).CloseWrite()
		var reply [8]byte
		if _, err := io.ReadFull(c, reply[:]); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got := binary.BigEndian.Uint64(reply[:]); got != uint64(b.N)*chunk {
			b.Fatalf("handler read %d bytes, want %d", got, b.N*chunk)
		}
	}
	download := func(b *testing.B, c net.Conn) {
		buf := make([]byte, chunk)
		b.SetBytes(chunk)
		b.ResetTimer()
		if _, err := c.Write(binary.BigEndian.AppendUint64(nil, uint64(b.N)*chunk)); err != nil {
			b.Fatal(err)
		}
		for range b.N {
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
	}

	for _, dir := range []struct {
		name string
		port uint16
		run  func(*testing.B, net.Conn)
	}{
		{"upload", portSink, upload},
		{"download", portSource, download},
	} {
		b.Run("stack/"+dir.name, func(b *testing.B) {
			h := startHarness(b, nil)
			c := h.dialTCP(b, netip.AddrPortFrom(netip.MustParseAddr("10.96.0.5"), dir.port))
			defer c.Close()
			dir.run(b, c)
		})
		b.Run("baseline-kernel-loopback/"+dir.name, func(b *testing.B) {
			c := dialLoopback(b, dir.port)
			defer c.Close()
			dir.run(b, c)
		})
	}
}

// dialLoopback serves testHandler's TCP behaviour for port on the kernel's
// loopback and dials it.
func dialLoopback(b *testing.B, port uint16) net.Conn {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Skipf("no loopback: %v", err)
	}
	handler := newTestHandler()
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		handler.HandleTCP(context.Background(), c, netip.AddrPort{}, netip.AddrPortFrom(netip.IPv4Unspecified(), port))
	})
	b.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// preparingHandler is a testHandler that is also a TCPPreparer: it refuses
// flows to portRefused, prepares those to portPrepared (which then echo),
// and leaves the rest to HandleTCP.
type preparingHandler struct {
	*testHandler
	prepared atomic.Int64
	served   atomic.Int64
}

const (
	portRefused  = 85
	portPrepared = 86
)

func (p *preparingHandler) PrepareTCP(ctx context.Context, src, dst netip.AddrPort) (PreparedTCP, error) {
	switch dst.Port() {
	case portRefused:
		return nil, errors.New("nothing listens there")
	case portPrepared:
		p.prepared.Add(1)
		return preparedEcho{p, src, dst}, nil
	}
	return nil, nil
}

type preparedEcho struct {
	p        *preparingHandler
	src, dst netip.AddrPort
}

func (e preparedEcho) Serve(ctx context.Context, conn net.Conn) {
	e.p.served.Add(1)
	e.p.HandleTCP(ctx, conn, e.src, netip.AddrPortFrom(e.dst.Addr(), portEcho))
}

func (e preparedEcho) Abandon() {}

// TestTCPPrepared: a Handler that reaches the destination before the
// handshake refuses a flow at connect (ECONNREFUSED, as a closed port does),
// serves a prepared one after it, and leaves the others to HandleTCP.
func TestTCPPrepared(t *testing.T) {
	var ph *preparingHandler
	h := startHarness(t, func(c *Config) {
		ph = &preparingHandler{testHandler: c.Handler.(*testHandler)}
		c.Handler = ph
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := h.client.DialContextTCPAddrPort(ctx, netip.MustParseAddrPort("10.96.0.9:85")); err == nil {
		c.Close()
		t.Fatal("dial to a refused destination succeeded")
	} else if !strings.Contains(err.Error(), "refused") {
		t.Errorf("dial to a refused destination: %v, want connection refused", err)
	}
	c := h.dialTCP(t, netip.MustParseAddrPort("10.96.0.9:86"))
	if err := echoTCP(c, randomBytes(64<<10)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c = h.dialTCP(t, netip.MustParseAddrPort("10.96.0.9:80"))
	if err := echoTCP(c, randomBytes(64<<10)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if ph.prepared.Load() != 1 || ph.served.Load() != 1 {
		t.Errorf("prepared %d, served %d; want 1 and 1", ph.prepared.Load(), ph.served.Load())
	}
}
