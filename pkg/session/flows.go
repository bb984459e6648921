package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/dns"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/stack"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

// flows is the stack's Handler: DNS for the session's nameserver is answered
// here; every other flow becomes a Tunnel stream to the manager, which dials
// the real destination inside the cluster.
type flows struct {
	d   *Daemon
	dns *dns.Server
	log *slog.Logger
	mem *idleMemory
}

func (f *flows) isDNS(dst netip.AddrPort) bool {
	return dst.Port() == 53 && dst.Addr() == f.d.dnsIP
}

func (f *flows) HandleTCP(ctx context.Context, conn net.Conn, src, dst netip.AddrPort) {
	f.mem.begin()
	defer f.mem.end()
	if f.isDNS(dst) {
		f.dns.ServeTCP(ctx, conn)
		return
	}
	// PrepareTCP prepared every other flow, or refused it.
	f.log.Debug("TCP flow not prepared", "src", src, "dst", dst)
	abort(conn)
}

func (f *flows) HandleUDP(ctx context.Context, conn net.Conn, src, dst netip.AddrPort) {
	f.mem.begin()
	defer f.mem.end()
	if f.isDNS(dst) {
		f.dns.ServeUDP(ctx, conn)
		return
	}
	f.tunnel(ctx, conn, teleproto.Protocol_PROTOCOL_UDP, src, dst)
}

// PrepareTCP implements stack.TCPPreparer: the manager dials the flow's
// destination before the application's SYN is answered, so a closed port is
// refused at connect. It costs a new connection one round trip to the
// manager before the handshake: the manager answers a TCP destination with
// Frame.opened once it dialed it.
func (f *flows) PrepareTCP(ctx context.Context, src, dst netip.AddrPort) (stack.PreparedTCP, error) {
	if f.isDNS(dst) {
		return nil, nil
	}
	c, sessionID := f.d.manager()
	if c == nil {
		return nil, errors.New("no manager connection") // refused, as between connections
	}
	f.mem.begin()
	ctx, cancel := context.WithCancel(ctx)
	st, err := f.open(ctx, c, sessionID, teleproto.Protocol_PROTOCOL_TCP, src, dst)
	var first *teleproto.Frame
	if err == nil {
		first, err = st.Recv()
	}
	if err == nil {
		if err = teleproto.AckOf(first); err != nil {
			err = fmt.Errorf("the manager's answer to the dial: %w", err)
		}
	}
	if err != nil {
		cancel()
		f.mem.end()
		return nil, err
	}
	return &preparedFlow{f: f, st: st, cancel: cancel, src: src, dst: dst}, nil
}

type preparedFlow struct {
	f        *flows
	st       teleproto.Manager_TunnelClient
	cancel   context.CancelFunc
	src, dst netip.AddrPort
}

func (p *preparedFlow) Serve(ctx context.Context, conn net.Conn) {
	defer p.f.mem.end()
	defer p.cancel()
	p.f.pipe(ctx, conn, p.st, p.src, p.dst)
}

func (p *preparedFlow) Abandon() {
	p.cancel()
	p.f.mem.end()
}

// open starts a Tunnel stream to the manager for one flow.
func (f *flows) open(ctx context.Context, c *managerclient.Client, sessionID string, proto teleproto.Protocol, src, dst netip.AddrPort) (teleproto.Manager_TunnelClient, error) {
	st, err := c.Tunnel(ctx)
	if err != nil {
		return nil, err
	}
	return st, st.Send(teleproto.FlowOpen(sessionID, proto, src, dst))
}

// tunnel carries one flow over a Tunnel stream to the manager, which dials
// the destination inside the cluster.
func (f *flows) tunnel(ctx context.Context, conn net.Conn, proto teleproto.Protocol, src, dst netip.AddrPort) {
	c, sessionID := f.d.manager()
	if c == nil {
		return // between connections: the app sees a reset
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := f.open(ctx, c, sessionID, proto, src, dst)
	if err != nil {
		f.log.Debug("flow broke", "src", src, "dst", dst, "err", err)
		abort(conn)
		return
	}
	f.pipe(ctx, conn, st, src, dst)
}

// pipe copies between conn and st until the flow ends.
func (f *flows) pipe(ctx context.Context, conn net.Conn, st teleproto.Manager_TunnelClient, src, dst netip.AddrPort) {
	if err := tunnel.Pipe(ctx, conn, st, st.CloseSend); err != nil {
		f.log.Debug("flow broke", "src", src, "dst", dst, "err", err)
		abort(conn)
	}
}

// abort resets conn: the tunnel broke, or the destination failed or reset,
// and the app sees a reset, not a clean end it could take for success.
func abort(conn net.Conn) {
	if a, ok := conn.(interface{ Abort() }); ok {
		a.Abort()
	}
}
