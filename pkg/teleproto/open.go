package teleproto

import (
	"errors"
	"fmt"
	"net/netip"
)

// FlowOpen is the first message of a laptop's Tunnel stream for a flow
// from src (for logs; may be the zero AddrPort) to dst in the cluster.
func FlowOpen(sessionID string, p Protocol, src, dst netip.AddrPort) *TunnelRequest {
	return &TunnelRequest{Msg: &TunnelRequest_Open{Open: &TunnelOpen{
		SessionId: sessionID,
		Kind: &TunnelOpen_Destination{Destination: &Destination{
			Protocol: p,
			Ip:       dst.Addr().AsSlice(), Port: uint32(dst.Port()),
			SrcIp: src.Addr().AsSlice(), SrcPort: uint32(src.Port()),
		}},
	}}}
}

// DialAnswerOpen is the first message of a laptop's Tunnel stream that
// answers the DialRequest with dialID.
func DialAnswerOpen(sessionID, dialID string) *TunnelRequest {
	return &TunnelRequest{Msg: &TunnelRequest_Open{Open: &TunnelOpen{SessionId: sessionID, Kind: &TunnelOpen_DialId{DialId: dialID}}}}
}

// InterceptedOpen is the first message of an agent's Connect stream for a
// connection intercepted for interceptID.
func InterceptedOpen(interceptID string) *ConnectRequest {
	return &ConnectRequest{Msg: &ConnectRequest_Open{Open: &ConnectOpen{InterceptId: interceptID}}}
}

// Ack is the frame that says a dial succeeded (Frame.opened).
func Ack() *Frame { return &Frame{Msg: &Frame_Opened{Opened: &Opened{}}} }

// AckOf is nil if f, the first frame a dialer receives, is the ack that its
// dial succeeded, and otherwise says why not: the Close's error, or what
// came instead.
func AckOf(f *Frame) error {
	switch m := f.GetMsg().(type) {
	case *Frame_Opened:
		return nil
	case *Frame_Close:
		return errors.New(m.Close.GetError())
	case *Frame_Data:
		return errors.New("data before the ack")
	}
	return errors.New("an empty frame, want the ack")
}

// Flow is d checked: "tcp" or "udp", the destination and the laptop-side
// source (the zero AddrPort when d has none). It refuses what the manager
// cannot dial (an unknown protocol, an address of the wrong length, port 0)
// with an error that says why.
func (d *Destination) Flow() (network string, dst, src netip.AddrPort, err error) {
	switch d.GetProtocol() {
	case Protocol_PROTOCOL_TCP:
		network = "tcp"
	case Protocol_PROTOCOL_UDP:
		network = "udp"
	default:
		return "", dst, src, fmt.Errorf("open: unknown protocol %v", d.GetProtocol())
	}
	a, ok := netip.AddrFromSlice(d.GetIp())
	if !ok {
		return "", dst, src, fmt.Errorf("open: destination IP has %d bytes, want 4 or 16", len(d.GetIp()))
	}
	if p := d.GetPort(); p == 0 || p > 65535 {
		return "", dst, src, fmt.Errorf("open: destination port %d out of range", p)
	}
	dst = netip.AddrPortFrom(a.Unmap(), uint16(d.GetPort()))
	if s, ok := netip.AddrFromSlice(d.GetSrcIp()); ok && d.GetSrcPort() <= 65535 {
		src = netip.AddrPortFrom(s.Unmap(), uint16(d.GetSrcPort()))
	}
	return network, dst, src, nil
}
