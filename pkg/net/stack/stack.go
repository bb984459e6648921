// Package stack terminates the TCP and UDP flows that laptop applications
// send into the TUN device, in gVisor's userspace TCP/IP stack, and hands each
// flow to Go code as a net.Conn.
//
// It is the same arrangement as tailscale's wgengine/netstack and
// wireguard-go's tun/netstack: packets read from a tun.Device are injected
// into a gVisor stack through a channel link endpoint, and whatever that stack
// sends is written back to the device. The NIC is promiscuous and may spoof
// source addresses, so a connection to any address (a cluster Service IP, a
// pod IP) is accepted and answered as if from that address.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Handler receives the flows the stack terminates. Its methods run in their
// own goroutine per flow; the stack waits for all of them before Run returns.
type Handler interface {
	// HandleTCP runs in its own goroutine per accepted TCP connection
	// (handshake already completed), unless the Handler is a TCPPreparer
	// that prepared the flow. src is the laptop application, dst the
	// address it dialled. The stack closes conn after HandleTCP returns.
	// conn implements CloseWrite and CloseRead for half-closes, and Abort
	// (see TCPConn) for a flow that broke.
	HandleTCP(ctx context.Context, conn net.Conn, src, dst netip.AddrPort)

	// HandleUDP runs in its own goroutine per UDP flow (one src/dst
	// 4-tuple). conn reads and writes datagrams of that flow only, one
	// datagram per call. The stack closes conn after HandleUDP returns, and
	// closes it and cancels ctx once the flow has been idle (no datagram in
	// either direction) for the configured idle timeout.
	HandleUDP(ctx context.Context, conn net.Conn, src, dst netip.AddrPort)
}

// TCPPreparer is an optional interface of a Handler that reaches a TCP
// flow's destination before the stack answers the application's SYN, as
// tailscale's netstack does for subnet routes: a destination that refuses is
// then refused to the application too (a reset in answer to its SYN, so
// connect fails with ECONNREFUSED), not accepted and reset a moment later,
// which `nc -z` and wait-for-port loops would take for an open port.
type TCPPreparer interface {
	// PrepareTCP runs in its own goroutine at a flow's SYN. It returns the
	// flow to serve once the handshake is done, an error to refuse it, or
	// (nil, nil) to have the stack accept at once and call HandleTCP.
	PrepareTCP(ctx context.Context, src, dst netip.AddrPort) (PreparedTCP, error)
}

// PreparedTCP is a flow whose destination PrepareTCP reached.
type PreparedTCP interface {
	// Serve runs after the handshake, as HandleTCP does.
	Serve(ctx context.Context, conn net.Conn)
	// Abandon releases the flow when the handshake failed after all.
	Abandon()
}

// Config configures a Stack.
type Config struct {
	// Device is where the laptop's packets come from. The Stack owns it
	// after New: Run reads its Events and closes it on the way out, since
	// closing is the only way to unblock a pending Device.Read.
	Device tun.Device

	// MTU of the stack's link. Zero means Device.MTU().
	MTU int

	// Handler receives every flow. Required.
	Handler Handler

	// MaxInFlightTCP bounds the TCP handshakes in progress at once; SYNs
	// beyond it are dropped (the client retransmits). Zero means 1024.
	MaxInFlightTCP int

	// UDPIdleTimeout ends a UDP flow without traffic for this long. Zero
	// means 60s.
	UDPIdleTimeout time.Duration

	// DNSIdleTimeout is the idle timeout of UDP flows to port 53, which
	// carry one query and its answer and would otherwise pile up. Zero
	// means 10s.
	DNSIdleTimeout time.Duration

	// Logger receives debug logs per flow and errors. Nil discards them.
	Logger *slog.Logger
}

const (
	nicID = 1

	// tunOffset is the headroom left in front of each packet in device
	// buffers: the Linux TUN with IFF_VNET_HDR writes a 10-byte virtio
	// header there. wireguard-go uses 16 as well.
	tunOffset = 16

	// maxPacketSize is the largest IP packet, and so the largest packet the
	// Linux TUN's GRO may coalesce outbound packets into.
	maxPacketSize = 65535

	// outboundQueueLen is the number of packets the stack may queue for
	// the device before it drops (and TCP backs off).
	outboundQueueLen = 1024

	defaultMaxInFlightTCP = 1024
	defaultUDPIdleTimeout = 60 * time.Second
	defaultDNSIdleTimeout = 10 * time.Second

	// TCP buffer bounds as tailscale's netstack chose them: with receive
	// buffer moderation the window grows up to the max on fast flows
	// without every idle connection holding megabytes.
	tcpRXBufMax = 8 << 20
	tcpTXBufMax = 6 << 20
)

// Stack is a gVisor TCP/IP stack attached to a tun.Device. Create it with
// New and run it once with Run.
type Stack struct {
	dev        tun.Device
	mtu        int
	handler    Handler
	log        *slog.Logger
	udpIdle    time.Duration
	dnsIdle    time.Duration
	ep         *channel.Endpoint
	ipstack    *gvstack.Stack
	readBufs   [][]byte
	readSizes  []int
	writeBufs  [][]byte
	writeBatch [][]byte

	started atomic.Bool

	// flowCtx is given to every flow; it is set before Run lets packets in
	// and cancelled when Run ends.
	flowCtx context.Context
	flows   flowGroup
}

// New builds the gVisor stack for cfg. Nothing moves until Run.
func New(cfg Config) (*Stack, error) {
	if cfg.Device == nil {
		return nil, errors.New("stack: Config.Device is nil")
	}
	if cfg.Handler == nil {
		return nil, errors.New("stack: Config.Handler is nil")
	}
	mtu := cfg.MTU
	devMTU, err := cfg.Device.MTU()
	if err != nil {
		return nil, fmt.Errorf("get MTU of TUN device: %w", err)
	}
	if mtu == 0 {
		mtu = devMTU
	}
	if mtu < 576 || mtu > maxPacketSize {
		return nil, fmt.Errorf("stack: MTU %d out of range [576, %d]", mtu, maxPacketSize)
	}
	s := &Stack{
		dev:     cfg.Device,
		mtu:     mtu,
		handler: cfg.Handler,
		log:     cfg.Logger,
		udpIdle: orDefault(cfg.UDPIdleTimeout, defaultUDPIdleTimeout),
		dnsIdle: orDefault(cfg.DNSIdleTimeout, defaultDNSIdleTimeout),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	maxInFlight := orDefault(cfg.MaxInFlightTCP, defaultMaxInFlightTCP)

	s.allocBuffers(max(mtu, devMTU))

	s.ipstack = gvstack.New(gvstack.Options{
		NetworkProtocols:   []gvstack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []gvstack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	// From here on, a failure must not leave the stack's workers running.
	ok := false
	defer func() {
		if !ok {
			s.ipstack.Destroy()
		}
	}()
	if err := s.setTCPOptions(); err != nil {
		return nil, err
	}

	s.ep = channel.New(outboundQueueLen, uint32(mtu), "")
	if err := s.ipstack.CreateNIC(nicID, s.ep); err != nil {
		return nil, fmt.Errorf("create gVisor NIC: %v", err)
	}
	// Promiscuous: accept packets to any destination address, not only
	// addresses assigned to the NIC (we assign none). Spoofing: reply from
	// that destination address.
	if err := s.ipstack.SetPromiscuousMode(nicID, true); err != nil {
		return nil, fmt.Errorf("set promiscuous mode on gVisor NIC: %v", err)
	}
	if err := s.ipstack.SetSpoofing(nicID, true); err != nil {
		return nil, fmt.Errorf("enable spoofing on gVisor NIC: %v", err)
	}
	s.ipstack.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})

	tcpFwd := tcp.NewForwarder(s.ipstack, tcp.DefaultReceiveBufferSize, maxInFlight, s.acceptTCP)
	s.ipstack.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpFwd.HandlePacket)
	udpFwd := udp.NewForwarder(s.ipstack, s.acceptUDP)
	s.ipstack.SetTransportProtocolHandler(udp.ProtocolNumber, udpFwd.HandlePacket)

	ok = true
	return s, nil
}

// orDefault returns v, or def if v is zero or negative.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (s *Stack) allocBuffers(readMTU int) {
	batch := max(s.dev.BatchSize(), 1)
	// Reads never exceed the device MTU: the Linux TUN splits GSO
	// super-packets into MTU-sized segments itself.
	s.readBufs = make([][]byte, batch)
	for i := range s.readBufs {
		s.readBufs[i] = make([]byte, tunOffset+readMTU)
	}
	s.readSizes = make([]int, batch)

	// Writes are MTU-sized packets, but a device that batches (the Linux
	// TUN with vnet headers) coalesces TCP and UDP segments of a batch into
	// the first buffer of each run (GRO), which it can only do if that
	// buffer has room for a full-size IP packet.
	writeCap := tunOffset + s.mtu
	if batch > 1 {
		writeCap = tunOffset + maxPacketSize
	}
	s.writeBufs = make([][]byte, batch)
	for i := range s.writeBufs {
		s.writeBufs[i] = make([]byte, writeCap)
	}
	s.writeBatch = make([][]byte, 0, batch)
}

func (s *Stack) setTCPOptions() error {
	opts := []tcpip.SettableTransportProtocolOption{
		// SACK is off by default in gVisor; without it one lost segment
		// costs a window's worth of retransmits.
		new(tcpip.TCPSACKEnabled(true)),
		new(tcpip.TCPModerateReceiveBufferOption(true)),
		&tcpip.TCPReceiveBufferSizeRangeOption{
			Min:     tcp.MinBufferSize,
			Default: tcp.DefaultReceiveBufferSize,
			Max:     tcpRXBufMax,
		},
		&tcpip.TCPSendBufferSizeRangeOption{
			Min:     tcp.MinBufferSize,
			Default: tcp.DefaultSendBufferSize,
			Max:     tcpTXBufMax,
		},
	}
	for _, opt := range opts {
		if err := s.ipstack.SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			return fmt.Errorf("set gVisor TCP option %T: %v", opt, err)
		}
	}
	return nil
}

// Run moves packets between the device and the stack until ctx is done or
// the device fails. Then it closes the device and the stack, cancels the
// context given to flows, and waits for every flow's handler to return. It
// returns nil if ctx ended it, or the device's error. Run may be called once.
func (s *Stack) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("stack: Run called more than once")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.flowCtx = ctx

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.readLoop(gctx) })
	g.Go(func() error { return s.writeLoop(gctx) })
	g.Go(func() error { s.drainEvents(gctx); return nil })
	g.Go(func() error {
		<-gctx.Done()
		// Unblocks readLoop's Device.Read.
		if err := s.dev.Close(); err != nil {
			s.log.Warn("close TUN device", "err", err)
		}
		return nil
	})
	err := g.Wait()

	cancel()
	s.flows.close()
	// Aborting every endpoint wakes handlers blocked on their conn.
	s.ipstack.Close()
	s.flows.wait()
	s.ipstack.RemoveNIC(nicID)
	s.ep.Close()
	s.ipstack.Wait()
	return err
}

// drainEvents consumes the device's events until ctx is done. Nobody else
// may read them while the Stack owns the device, and the Linux TUN's netlink
// goroutine blocks on sending them if they are not read. An MTU change is
// only logged: buffers and the link MTU are sized once, in New.
func (s *Stack) drainEvents(ctx context.Context) {
	events := s.dev.Events()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev&tun.EventMTUUpdate != 0 {
				mtu, err := s.dev.MTU()
				s.log.Warn("TUN device MTU changed; the stack keeps its own", "device_mtu", mtu, "err", err, "stack_mtu", s.mtu)
			}
		}
	}
}

// readLoop injects packets from the device into the stack.
func (s *Stack) readLoop(ctx context.Context) error {
	for {
		n, err := s.dev.Read(s.readBufs, s.readSizes, tunOffset)
		for i := range n {
			s.inject(s.readBufs[i][tunOffset : tunOffset+s.readSizes[i]])
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil // we closed the device
			}
			if errors.Is(err, tun.ErrTooManySegments) {
				// A GSO super-packet had more segments than our batch;
				// the rest were dropped and TCP will retransmit them.
				s.log.Debug("dropped packets from multi-segment read", "err", err)
				continue
			}
			return fmt.Errorf("read from TUN device: %w", err)
		}
	}
}

func (s *Stack) inject(pkt []byte) {
	if len(pkt) == 0 {
		return
	}
	var proto tcpip.NetworkProtocolNumber
	switch pkt[0] >> 4 {
	case 4:
		proto = header.IPv4ProtocolNumber
	case 6:
		proto = header.IPv6ProtocolNumber
	default:
		return
	}
	// MakeWithData copies, so the read buffer can be reused at once.
	pkb := gvstack.NewPacketBuffer(gvstack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
	s.ep.InjectInbound(proto, pkb)
	pkb.DecRef()
}

// writeLoop writes what the stack sends to the device, in batches of
// whatever is queued, up to the device's batch size.
func (s *Stack) writeLoop(ctx context.Context) error {
	for {
		pkt := s.ep.ReadContext(ctx)
		if pkt == nil {
			return nil // ctx done
		}
		batch := s.writeBatch[:0]
		for pkt != nil {
			buf := s.writeBufs[len(batch)]
			n, ok := copyPacket(buf[tunOffset:], pkt)
			pkt.DecRef()
			if ok {
				batch = append(batch, buf[:tunOffset+n])
			} else {
				s.log.Debug("dropped outbound packet larger than buffer", "size", n)
			}
			if len(batch) == len(s.writeBufs) {
				break
			}
			pkt = s.ep.Read()
		}
		if len(batch) == 0 {
			continue
		}
		if _, err := s.dev.Write(batch, tunOffset); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, os.ErrClosed) {
				return fmt.Errorf("write to TUN device: %w", err)
			}
			// Anything else failed for some packets only; like a
			// lossy link, TCP recovers.
			s.log.Debug("write to TUN device", "err", err)
		}
	}
}

// copyPacket copies pkt into dst and reports its size and whether it fit.
func copyPacket(dst []byte, pkt *gvstack.PacketBuffer) (int, bool) {
	size := pkt.Size()
	if size > len(dst) {
		return size, false
	}
	n := 0
	for _, b := range pkt.AsSlices() {
		n += copy(dst[n:], b)
	}
	return n, true
}

// acceptTCP runs in the goroutine the TCP forwarder starts per SYN. That
// goroutine is gVisor's; it is counted from here on, so one that only gets
// here after Run has ended just resets the connection and returns.
func (s *Stack) acceptTCP(r *tcp.ForwarderRequest) {
	if !s.flows.add() {
		r.Complete(true)
		return
	}
	defer s.flows.done()

	id := r.ID()
	src := addrPort(id.RemoteAddress, id.RemotePort)
	dst := addrPort(id.LocalAddress, id.LocalPort)
	var prepared PreparedTCP
	if p, ok := s.handler.(TCPPreparer); ok {
		var err error
		if prepared, err = p.PrepareTCP(s.flowCtx, src, dst); err != nil {
			r.Complete(true) // RST: connection refused
			s.log.Debug("TCP flow refused", "src", src, "dst", dst, "err", err)
			return
		}
	}
	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq) // blocks until the handshake ends
	if err != nil {
		r.Complete(true)
		if prepared != nil {
			prepared.Abandon()
		}
		s.log.Debug("TCP handshake failed", "src", src, "dst", dst, "err", err)
		return
	}
	r.Complete(false)

	conn := &TCPConn{TCPConn: gonet.NewTCPConn(&wq, ep), ep: ep}
	defer conn.Close()
	s.log.Debug("TCP flow", "src", src, "dst", dst)
	if prepared != nil {
		prepared.Serve(s.flowCtx, conn)
		return
	}
	s.handler.HandleTCP(s.flowCtx, conn, src, dst)
}

// TCPConn is the connection HandleTCP gets.
type TCPConn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

// Abort resets the connection (RST): the laptop application sees
// ECONNRESET, as it would if the far end had reset it, where Close would
// end the stream cleanly and a truncated answer could pass for a whole one.
func (c *TCPConn) Abort() { c.ep.Abort() }

// acceptUDP runs synchronously in the stack's receive path for the first
// datagram of a flow, so it must not block. Later datagrams of the flow go
// to the endpoint it creates.
func (s *Stack) acceptUDP(r *udp.ForwarderRequest) {
	id := r.ID()
	src := addrPort(id.RemoteAddress, id.RemotePort)
	dst := addrPort(id.LocalAddress, id.LocalPort)
	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq)
	if err != nil {
		s.log.Debug("create UDP endpoint", "src", src, "dst", dst, "err", err)
		return
	}
	idle := s.udpIdle
	if dst.Port() == 53 {
		idle = s.dnsIdle
	}
	ctx, cancel := context.WithCancel(s.flowCtx)
	conn := &udpConn{c: gonet.NewUDPConn(&wq, ep)}
	conn.touch()

	// Both goroutines are counted at once so that a shutdown in between
	// cannot wait for one and miss the other.
	if !s.flows.addN(2) {
		cancel()
		conn.Close()
		return
	}
	go func() {
		defer s.flows.done()
		defer conn.Close()
		defer cancel()
		s.log.Debug("UDP flow", "src", src, "dst", dst)
		s.handler.HandleUDP(ctx, conn, src, dst)
	}()
	go func() {
		defer s.flows.done()
		closeWhenIdle(ctx, &conn.last, idle, func() {
			cancel()
			conn.Close() // wakes a handler blocked in Read
		})
	}()
}

func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(ip, port)
}

// udpConn is a UDP flow's conn that remembers when it last carried a
// datagram, for the idle timeout. It wraps rather than embeds gonet.UDPConn
// so that ReadFrom and WriteTo, which could address other peers, are hidden.
type udpConn struct {
	c    *gonet.UDPConn
	last atomic.Int64 // UnixNano of the last datagram
}

var _ net.Conn = (*udpConn)(nil)

func (c *udpConn) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *udpConn) Read(b []byte) (int, error) {
	n, err := c.c.Read(b)
	if err == nil {
		c.touch()
	}
	return n, err
}

func (c *udpConn) Write(b []byte) (int, error) {
	n, err := c.c.Write(b)
	if err == nil {
		c.touch()
	}
	return n, err
}

func (c *udpConn) Close() error                       { return c.c.Close() }
func (c *udpConn) LocalAddr() net.Addr                { return c.c.LocalAddr() }
func (c *udpConn) RemoteAddr() net.Addr               { return c.c.RemoteAddr() }
func (c *udpConn) SetDeadline(t time.Time) error      { return c.c.SetDeadline(t) }
func (c *udpConn) SetReadDeadline(t time.Time) error  { return c.c.SetReadDeadline(t) }
func (c *udpConn) SetWriteDeadline(t time.Time) error { return c.c.SetWriteDeadline(t) }

// closeWhenIdle calls end once no datagram has passed for idle (last holds
// the UnixNano of the last one), or returns when ctx is done.
func closeWhenIdle(ctx context.Context, last *atomic.Int64, idle time.Duration, end func()) {
	t := time.NewTimer(idle)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			since := now.Sub(time.Unix(0, last.Load()))
			if since >= idle {
				end()
				return
			}
			t.Reset(idle - since)
		}
	}
}

// flowGroup counts flow goroutines and refuses new ones once closed, so that
// wait cannot race with a late add.
type flowGroup struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (g *flowGroup) add() bool { return g.addN(1) }

func (g *flowGroup) addN(n int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(n)
	return true
}

func (g *flowGroup) done() { g.wg.Done() }

func (g *flowGroup) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func (g *flowGroup) wait() { g.wg.Wait() }
