package teleproto

import (
	"errors"
	"fmt"
	"net/netip"
)

// OpenCase is what an Open says, decoded by OpenCaseOf: one of OpenFlow,
// OpenDialAnswer, OpenIntercepted and OpenAck. Message builds the Open of a
// case, the only way this build makes one, so that every sender sets the
// fields that peers predating the Open oneof read.
type OpenCase interface {
	// Message is the case as the first message of a stream (or, for
	// OpenAck, the answer to one).
	Message() *TunnelMessage
	openCase()
}

// OpenFlow is a laptop's flow to a destination in the cluster, the first
// message of a Tunnel stream.
type OpenFlow struct {
	SessionID string
	// PROTOCOL_TCP or PROTOCOL_UDP.
	Protocol Protocol
	Dest     netip.AddrPort
	// The laptop-side source, for logs only; may be the zero AddrPort.
	Src netip.AddrPort
	// TCP: the laptop wants OpenAck once the destination is dialed.
	AckDial bool
}

// OpenDialAnswer is a laptop's Tunnel stream answering the DialRequest
// with DialID.
type OpenDialAnswer struct {
	SessionID string
	DialID    string
}

// OpenIntercepted is an agent's intercepted connection, the first message
// of a Connect stream.
type OpenIntercepted struct {
	InterceptID string
	// The app's client, for logs; may be the zero AddrPort. Agents do not
	// send it yet; it is the legacy src fields, as the manager has always
	// read them.
	Client netip.AddrPort
}

// OpenAck says that a dial succeeded: the manager's answer to an OpenFlow
// with AckDial, and the laptop's (through the manager) to an agent's
// OpenIntercepted.
type OpenAck struct{}

func (OpenFlow) openCase()        {}
func (OpenDialAnswer) openCase()  {}
func (OpenIntercepted) openCase() {}
func (OpenAck) openCase()         {}

// Message sets destination and, for managers that predate it, the
// deprecated fields beside it, with the same values.
func (c OpenFlow) Message() *TunnelMessage {
	dst, src := c.Dest.Addr().AsSlice(), c.Src.Addr().AsSlice()
	return openMessage(&Open{
		SessionId: c.SessionID,
		Kind: &Open_Destination{Destination: &Destination{
			Protocol: c.Protocol,
			Ip:       dst, Port: uint32(c.Dest.Port()),
			SrcIp: src, SrcPort: uint32(c.Src.Port()),
			AckDial: c.AckDial,
		}},
		Protocol: c.Protocol,
		DestIp:   dst, DestPort: uint32(c.Dest.Port()),
		SrcIp: src, SrcPort: uint32(c.Src.Port()),
		AckDial: c.AckDial,
	})
}

// Message encodes dial_id as it always was: it only moved into the oneof.
func (c OpenDialAnswer) Message() *TunnelMessage {
	return openMessage(&Open{SessionId: c.SessionID, Kind: &Open_DialId{DialId: c.DialID}})
}

// Message encodes intercept_id as it always was, which older managers read.
func (c OpenIntercepted) Message() *TunnelMessage {
	return openMessage(&Open{
		Kind:  &Open_InterceptId{InterceptId: c.InterceptID},
		SrcIp: c.Client.Addr().AsSlice(), SrcPort: uint32(c.Client.Port()),
	})
}

// Message is an Open with only opened set, which a peer predating it reads
// as the empty Open it took for the ack.
func (OpenAck) Message() *TunnelMessage {
	return openMessage(&Open{Kind: &Open_Opened{Opened: &Opened{}}})
}

func openMessage(o *Open) *TunnelMessage {
	return &TunnelMessage{Msg: &TunnelMessage_Open{Open: o}}
}

// OpenCaseOf decodes an Open from a peer of any age, the only reader of its
// fields: its kind or, from a peer that predates the oneof, the fields it
// set (a destination's, or none for the ack). It refuses a case it cannot
// act on (no destination address, an unknown protocol, an empty id) with an
// error that says why. An Open with only fields this build does not know is
// the ack, as it was before the oneof.
func OpenCaseOf(o *Open) (OpenCase, error) {
	if o == nil {
		return nil, errors.New("not an Open")
	}
	switch k := o.GetKind().(type) {
	case *Open_Destination:
		d := k.Destination
		return flowOf(o.GetSessionId(), d.GetProtocol(), d.GetIp(), d.GetPort(), d.GetSrcIp(), d.GetSrcPort(), d.GetAckDial())
	case *Open_DialId:
		if k.DialId == "" {
			return nil, errors.New("open: empty dial_id")
		}
		return OpenDialAnswer{SessionID: o.GetSessionId(), DialID: k.DialId}, nil
	case *Open_InterceptId:
		if k.InterceptId == "" {
			return nil, errors.New("open: empty intercept_id")
		}
		client, _ := addrPortOf(o.GetSrcIp(), o.GetSrcPort())
		return OpenIntercepted{InterceptID: k.InterceptId, Client: client}, nil
	case *Open_Opened:
		return OpenAck{}, nil
	}
	// A peer that predates the oneof: a destination is there when any of
	// its fields is.
	if o.GetProtocol() != Protocol_PROTOCOL_UNSPECIFIED || len(o.GetDestIp()) > 0 || o.GetDestPort() != 0 ||
		len(o.GetSrcIp()) > 0 || o.GetSrcPort() != 0 || o.GetAckDial() {
		return flowOf(o.GetSessionId(), o.GetProtocol(), o.GetDestIp(), o.GetDestPort(), o.GetSrcIp(), o.GetSrcPort(), o.GetAckDial())
	}
	return OpenAck{}, nil
}

// AckOf is nil if m, the first message a dialer receives that is not a
// Close, is the ack that its dial succeeded.
func AckOf(m *TunnelMessage) error {
	if m.GetOpen() == nil {
		return errors.New("data before the ack")
	}
	oc, err := OpenCaseOf(m.GetOpen())
	if err != nil {
		return err
	}
	if _, ok := oc.(OpenAck); !ok {
		return fmt.Errorf("%T, want an ack", oc)
	}
	return nil
}

func flowOf(session string, proto Protocol, ip []byte, port uint32, srcIP []byte, srcPort uint32, ack bool) (OpenCase, error) {
	switch proto {
	case Protocol_PROTOCOL_TCP, Protocol_PROTOCOL_UDP:
	default:
		return nil, fmt.Errorf("open: unknown protocol %v", proto)
	}
	if _, ok := netip.AddrFromSlice(ip); !ok {
		return nil, fmt.Errorf("open: destination IP has %d bytes, want 4 or 16", len(ip))
	}
	if port == 0 || port > 65535 {
		return nil, fmt.Errorf("open: destination port %d out of range", port)
	}
	dest, _ := addrPortOf(ip, port)
	src, _ := addrPortOf(srcIP, srcPort)
	return OpenFlow{SessionID: session, Protocol: proto, Dest: dest, Src: src, AckDial: ack}, nil
}

// addrPortOf is ip (unmapped) and port, if ip has 4 or 16 bytes and port
// fits; else the zero AddrPort and false.
func addrPortOf(ip []byte, port uint32) (netip.AddrPort, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || port > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}
