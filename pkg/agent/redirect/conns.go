//go:build linux

package redirect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Bypassing counts the established TCP connections to port that the app
// accepted itself: NAT applies to new connections only, so those opened
// before the redirect go on reaching the app directly until their clients
// close them. The agent's own connections to the app come from loopback and
// are not counted. With resetIdle > 0 it also resets (SOCK_DESTROY, as
// `ss -K` does) each of them that has had no data either way for resetIdle
// and holds none in flight: its client sees a reset where it would have
// sent its next request, and reconnects through the redirect.
//
// Sockets are read and destroyed with sock_diag messages written here, over
// mdlayher/netlink (the library nftables already uses), rather than with
// vishvananda/netlink, whose SocketDestroy speaks AF_INET only: a Go app
// listening on :PORT holds its IPv4 clients in AF_INET6 sockets (v4-mapped),
// which that cannot reach.
func (r *Redirector) Bypassing(port uint16, resetIdle time.Duration) (Conns, error) {
	r.mu.Lock()
	c := r.diag
	r.mu.Unlock()
	if c == nil {
		return Conns{}, errors.New("redirect: closed")
	}
	var out Conns
	var errs []error
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		socks, err := dumpEstablished(c, family)
		if err != nil {
			return out, fmt.Errorf("list TCP sockets (family %d): %w", family, err)
		}
		for _, s := range socks {
			if s.localPort != port || s.remote.Unmap().IsLoopback() {
				continue
			}
			out.Bypassing++
			if resetIdle <= 0 {
				continue
			}
			if !s.idleFor(resetIdle) {
				r.log.Info("kept a connection that bypasses the redirect: not idle", "port", port,
					"client", netip.AddrPortFrom(s.remote.Unmap(), s.remotePort).String(),
					"tcp_info", s.info, "last_data_sent_ms", s.lastSentMs, "last_data_recv_ms", s.lastRecvMs, "unread", s.rqueue)
				continue
			}
			if err := destroy(c, s); err != nil {
				errs = append(errs, fmt.Errorf("reset the connection from %s to port %d: %w", s.remote, port, err))
				continue
			}
			out.Reset++
			r.log.Info("reset a connection that bypassed the redirect", "port", port, "client", netip.AddrPortFrom(s.remote.Unmap(), s.remotePort).String())
		}
	}
	return out, errors.Join(errs...)
}

// Constants of linux/sock_diag.h, linux/inet_diag.h and linux/tcp.h.
const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	sockDestroy      = 21 // SOCK_DESTROY
	inetDiagInfo     = 2  // INET_DIAG_INFO: struct tcp_info
	tcpEstablished   = 1

	inetDiagReqV2Len = 56 // struct inet_diag_req_v2
	inetDiagMsgLen   = 72 // struct inet_diag_msg

	// Offsets in struct tcp_info (stable ABI: fields are only appended).
	tcpiLastDataSent = 44
	tcpiLastDataRecv = 52
)

// diagSock is one socket of a sock_diag dump.
type diagSock struct {
	family     uint8
	localPort  uint16
	remotePort uint16
	local      netip.Addr
	remote     netip.Addr
	iface      uint32
	cookie     [2]uint32
	rqueue     uint32 // received, not yet read by the app
	// From tcp_info; ok is false when the kernel sent none.
	info                   bool
	lastSentMs, lastRecvMs uint32
}

// idleFor reports whether no request is under way on the socket: nothing
// moved either way for d, and the app has read all it received. Bytes the
// app sent d ago or more and the client has not acknowledged are not
// waited for: on the pod network the round trip is far below d, so they
// have arrived, and the client is delaying its ACK, which a client that
// sends its next request before its delayed-ACK timer fires (every 25 ms,
// say) never sends on its own, so such a connection would never look idle.
func (s diagSock) idleFor(d time.Duration) bool {
	ms := uint32(d.Milliseconds())
	return s.info && s.rqueue == 0 && s.lastSentMs >= ms && s.lastRecvMs >= ms
}

// diagReq encodes struct inet_diag_req_v2. The socket id's ports and
// addresses are in network order; everything else is the host's.
func diagReq(family uint8, ext uint8, states uint32, s *diagSock) []byte {
	b := make([]byte, inetDiagReqV2Len)
	b[0], b[1], b[2] = family, unix.IPPROTO_TCP, ext
	binary.NativeEndian.PutUint32(b[4:], states)
	if s != nil {
		binary.BigEndian.PutUint16(b[8:], s.localPort)
		binary.BigEndian.PutUint16(b[10:], s.remotePort)
		putAddr(b[12:28], s.local, family)
		putAddr(b[28:44], s.remote, family)
		binary.NativeEndian.PutUint32(b[44:], s.iface)
		binary.NativeEndian.PutUint32(b[48:], s.cookie[0])
		binary.NativeEndian.PutUint32(b[52:], s.cookie[1])
	} else {
		// INET_DIAG_NOCOOKIE: a dump matches any socket.
		binary.NativeEndian.PutUint32(b[48:], ^uint32(0))
		binary.NativeEndian.PutUint32(b[52:], ^uint32(0))
	}
	return b
}

func putAddr(dst []byte, a netip.Addr, family uint8) {
	if family == unix.AF_INET {
		a4 := a.Unmap().As4()
		copy(dst, a4[:])
		return
	}
	a16 := a.As16()
	copy(dst, a16[:])
}

func dumpEstablished(c *netlink.Conn, family uint8) ([]diagSock, error) {
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: sockDiagByFamily, Flags: netlink.Request | netlink.Dump},
		Data:   diagReq(family, 1<<(inetDiagInfo-1), 1<<tcpEstablished, nil),
	})
	if err != nil {
		return nil, err
	}
	out := make([]diagSock, 0, len(msgs))
	for _, m := range msgs {
		s, err := parseDiagMsg(m.Data)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// parseDiagMsg decodes struct inet_diag_msg and its INET_DIAG_INFO.
func parseDiagMsg(b []byte) (diagSock, error) {
	if len(b) < inetDiagMsgLen {
		return diagSock{}, fmt.Errorf("inet_diag_msg of %d bytes, want %d", len(b), inetDiagMsgLen)
	}
	s := diagSock{
		family:     b[0],
		localPort:  binary.BigEndian.Uint16(b[4:]),
		remotePort: binary.BigEndian.Uint16(b[6:]),
		iface:      binary.NativeEndian.Uint32(b[40:]),
		cookie:     [2]uint32{binary.NativeEndian.Uint32(b[44:]), binary.NativeEndian.Uint32(b[48:])},
		rqueue:     binary.NativeEndian.Uint32(b[56:]),
	}
	if s.family == unix.AF_INET {
		s.local = netip.AddrFrom4([4]byte(b[8:12]))
		s.remote = netip.AddrFrom4([4]byte(b[24:28]))
	} else {
		s.local = netip.AddrFrom16([16]byte(b[8:24]))
		s.remote = netip.AddrFrom16([16]byte(b[24:40]))
	}
	ad, err := netlink.NewAttributeDecoder(b[inetDiagMsgLen:])
	if err != nil {
		return s, err
	}
	for ad.Next() {
		if ad.Type() != inetDiagInfo {
			continue
		}
		if ti := ad.Bytes(); len(ti) >= tcpiLastDataRecv+4 {
			s.info = true
			s.lastSentMs = binary.NativeEndian.Uint32(ti[tcpiLastDataSent:])
			s.lastRecvMs = binary.NativeEndian.Uint32(ti[tcpiLastDataRecv:])
		}
	}
	return s, ad.Err()
}

// destroy resets one socket, named by its id and cookie so that no other
// socket (a newer one on the same addresses) is hit.
func destroy(c *netlink.Conn, s diagSock) error {
	_, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: sockDestroy, Flags: netlink.Request | netlink.Acknowledge},
		Data:   diagReq(s.family, 0, ^uint32(0), &s),
	})
	return permissionHint(err)
}
