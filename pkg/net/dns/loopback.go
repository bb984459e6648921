package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/miekg/dns"
)

// The daemon's DNS server on loopback, for macOS: its /etc/resolver files
// point at 127.0.0.1 with a `port` line (see resolver.ResolverDir), as
// Telepresence's do. The daemon, unprivileged, binds the port before it
// asks the helper for the device, and passes it in the request. When the
// daemon dies, the port dies with it: mDNSResponder's queries for cluster
// names get an ICMP port unreachable at once instead of waiting on a
// nameserver inside a utun that is gone.
//
// Any local user can query it, as any local user could query the cluster
// DNS address inside the session's routes; Telepresence's is as open.

// LoopbackAddr is where the loopback server listens; the port is chosen by
// ListenLoopback.
var LoopbackAddr = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// maxLoopbackTries bounds the search for a port free for both UDP and TCP.
const maxLoopbackTries = 16

// ListenLoopback binds a UDP socket and a TCP listener on one free port of
// 127.0.0.1 (TCP for responses too large for UDP: mDNSResponder retries a
// truncated answer over TCP to the same port). The caller closes both,
// or hands them to ServeLoopback.
func ListenLoopback() (net.PacketConn, net.Listener, error) {
	var errs []error
	for range maxLoopbackTries {
		pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(LoopbackAddr, 0)))
		if err != nil {
			return nil, nil, fmt.Errorf("listen for DNS on %s: %w", LoopbackAddr, err)
		}
		ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
		l, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(ap))
		if err == nil {
			return pc, l, nil
		}
		// The port is free for UDP only: another one.
		pc.Close()
		errs = append(errs, err)
	}
	return nil, nil, fmt.Errorf("listen for DNS on %s: no port free for both UDP and TCP in %d tries: %w", LoopbackAddr, maxLoopbackTries, errors.Join(errs...))
}

// ServeLoopback answers queries on pc and l (from ListenLoopback) until ctx
// ends, then closes them and returns once every query in progress is done.
// It uses miekg/dns's server for the sockets: many clients on one socket,
// unlike ServeUDP and ServeTCP, which serve one flow of the TUN's stack.
func (s *Server) ServeLoopback(ctx context.Context, pc net.PacketConn, l net.Listener) error {
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := s.Answer(ctx, q)
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncate(udpResponseSize(q))
		}
		if err := w.WriteMsg(m); err != nil && ctx.Err() == nil {
			s.log.Debug("write dns response on loopback", "client", addrString(w.RemoteAddr()), "err", err)
		}
	})
	servers := []*dns.Server{
		{PacketConn: pc, Handler: h},
		{Listener: l, Handler: h},
	}
	// Closing the sockets when ctx ends stops both servers; each returns
	// once the handlers it started have (miekg/dns waits for them).
	stop := context.AfterFunc(ctx, func() { pc.Close(); l.Close() })
	defer stop()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, srv := range servers {
		wg.Go(func() {
			if err := srv.ActivateAndServe(); err != nil && ctx.Err() == nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				// One socket failing ends both: half a server would
				// answer small responses and fail large ones.
				pc.Close()
				l.Close()
			}
		})
	}
	wg.Wait()
	pc.Close()
	l.Close()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("serve DNS on %s: %w", pc.LocalAddr(), err)
	}
	return ctx.Err()
}

// udpResponseSize is the largest UDP response q's sender takes: 512 bytes,
// or its EDNS0 buffer size.
func udpResponseSize(q *dns.Msg) int {
	if opt := q.IsEdns0(); opt != nil {
		return max(int(opt.UDPSize()), dns.MinMsgSize)
	}
	return dns.MinMsgSize
}
