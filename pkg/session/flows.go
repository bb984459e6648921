package session

import (
	"context"
	"log/slog"
	"net"
	"net/netip"

	"github.com/kubectl-tele/kubectl-tele/pkg/net/dns"
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
	f.tunnel(ctx, conn, teleproto.Protocol_PROTOCOL_TCP, src, dst)
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

// tunnel carries one flow over a Tunnel stream to the manager, which dials
// the destination inside the cluster.
func (f *flows) tunnel(ctx context.Context, conn net.Conn, proto teleproto.Protocol, src, dst netip.AddrPort) {
	c, sessionID := f.d.manager()
	if c == nil {
		return // between connections: the app sees a reset
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Tunnel(ctx)
	if err == nil {
		err = st.Send(&teleproto.TunnelMessage{Msg: &teleproto.TunnelMessage_Open{Open: &teleproto.Open{
			SessionId: sessionID, Protocol: proto,
			DestIp: dst.Addr().AsSlice(), DestPort: uint32(dst.Port()),
			SrcIp: src.Addr().AsSlice(), SrcPort: uint32(src.Port()),
		}}})
	}
	if err == nil {
		err = tunnel.Pipe(ctx, conn, st, st.CloseSend)
	}
	if err != nil {
		f.log.Debug("flow broke", "src", src, "dst", dst, "err", err)
		// The tunnel broke, or the destination failed or reset: the app
		// sees a reset, not a clean end it could take for success.
		if a, ok := conn.(interface{ Abort() }); ok {
			a.Abort()
		}
	}
}
