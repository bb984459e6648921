package session

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/net/dns"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// flows is the stack's Handler: DNS for the session's nameserver is answered
// here; every other flow becomes a Tunnel stream to the manager, which dials
// the real destination inside the cluster.
type flows struct {
	d   *Daemon
	dns *dns.Server
	log *slog.Logger
}

// Buffer for one direction of one flow; the stack hands at most an MTU-sized
// segment per read, but a larger buffer lets gVisor coalesce.
const flowBuffer = 32 << 10

var bufPool = sync.Pool{New: func() any { return new([flowBuffer]byte) }}

func (f *flows) isDNS(dst netip.AddrPort) bool {
	return dst.Port() == 53 && dst.Addr() == f.d.dnsIP
}

func (f *flows) HandleTCP(ctx context.Context, conn net.Conn, src, dst netip.AddrPort) {
	if f.isDNS(dst) {
		f.dns.ServeTCP(ctx, conn)
		return
	}
	f.tunnel(ctx, conn, teleproto.Protocol_PROTOCOL_TCP, src, dst)
}

func (f *flows) HandleUDP(ctx context.Context, conn net.Conn, src, dst netip.AddrPort) {
	if f.isDNS(dst) {
		f.dns.ServeUDP(ctx, conn)
		return
	}
	f.tunnel(ctx, conn, teleproto.Protocol_PROTOCOL_UDP, src, dst)
}

type closeWriter interface{ CloseWrite() error }

// tunnel copies one flow both ways over a Tunnel stream. For TCP the laptop
// side's EOF becomes CloseSend (a half-close at the destination) and the
// stream's end becomes CloseWrite here; for UDP each read is one datagram.
func (f *flows) tunnel(ctx context.Context, conn net.Conn, proto teleproto.Protocol, src, dst netip.AddrPort) {
	c, sessionID := f.d.manager()
	if c == nil {
		return // between connections: the app sees a reset
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Tunnel(ctx)
	if err != nil {
		f.log.Debug("open tunnel", "dst", dst, "err", err)
		return
	}
	err = st.Send(&teleproto.TunnelMessage{Msg: &teleproto.TunnelMessage_Open{Open: &teleproto.Open{
		SessionId: sessionID, Protocol: proto,
		DestIp: dst.Addr().AsSlice(), DestPort: uint32(dst.Port()),
		SrcIp: src.Addr().AsSlice(), SrcPort: uint32(src.Port()),
	}}})
	if err != nil {
		f.log.Debug("open tunnel", "dst", dst, "err", err)
		return
	}
	// A blocked Read on the laptop side wakes when the flow is cancelled.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	down := make(chan struct{})
	go func() { // destination -> laptop
		defer close(down)
		for {
			m, err := st.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					if cw, ok := conn.(closeWriter); ok && proto == teleproto.Protocol_PROTOCOL_TCP {
						cw.CloseWrite()
						return
					}
				} else {
					f.log.Debug("tunnel recv", "dst", dst, "err", err)
				}
				cancel()
				return
			}
			if cl := m.GetClose(); cl != nil {
				f.log.Debug("tunnel closed by manager", "dst", dst, "err", cl.GetError())
				cancel()
				return
			}
			if _, err := conn.Write(m.GetData()); err != nil {
				cancel()
				return
			}
		}
	}()
	buf := bufPool.Get().(*[flowBuffer]byte)
	defer bufPool.Put(buf)
	for { // laptop -> destination
		n, err := conn.Read(buf[:])
		if n > 0 {
			if serr := st.Send(&teleproto.TunnelMessage{Msg: &teleproto.TunnelMessage_Data{Data: buf[:n]}}); serr != nil {
				break
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				st.CloseSend()
				select {
				case <-down:
				case <-ctx.Done():
				}
			}
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	cancel()
	<-down
}
