package teleproto

import (
	"net/netip"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// TunnelRequest and ConnectRequest carry Frame's cases with Frame's numbers
// and types, so that pkg/tunnel reads and writes them as Frames.
func TestRequestsMirrorFrame(t *testing.T) {
	frame := (&Frame{}).ProtoReflect().Descriptor().Fields()
	for _, m := range []protoreflect.ProtoMessage{&TunnelRequest{}, &ConnectRequest{}} {
		fields := m.ProtoReflect().Descriptor().Fields()
		for i := range frame.Len() {
			want := frame.Get(i)
			got := fields.ByNumber(want.Number())
			if got == nil || got.Name() != want.Name() || got.Kind() != want.Kind() || got.Message() != want.Message() {
				t.Errorf("%s field %d: %v, want as Frame's %v", m.ProtoReflect().Descriptor().Name(), want.Number(), got, want)
			}
		}
		if open := fields.ByName("open"); open == nil || frame.ByNumber(open.Number()) != nil {
			t.Errorf("%s: open must be a number Frame does not use", m.ProtoReflect().Descriptor().Name())
		}
	}
}

func TestDestinationFlow(t *testing.T) {
	src := netip.MustParseAddrPort("100.64.0.1:40000")
	dst := netip.MustParseAddrPort("10.96.0.10:80")
	d := FlowOpen("s1", Protocol_PROTOCOL_TCP, src, dst).GetOpen().GetDestination()
	network, gotDst, gotSrc, err := d.Flow()
	if err != nil || network != "tcp" || gotDst != dst || gotSrc != src {
		t.Fatalf("Flow() = %q, %v, %v, %v", network, gotDst, gotSrc, err)
	}
	for name, bad := range map[string]*Destination{
		"no protocol":  {Ip: dst.Addr().AsSlice(), Port: 80},
		"3-byte IP":    {Protocol: Protocol_PROTOCOL_UDP, Ip: []byte{1, 2, 3}, Port: 80},
		"port 0":       {Protocol: Protocol_PROTOCOL_TCP, Ip: dst.Addr().AsSlice()},
		"port too big": {Protocol: Protocol_PROTOCOL_TCP, Ip: dst.Addr().AsSlice(), Port: 70000},
	} {
		if _, _, _, err := bad.Flow(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// No source: the zero AddrPort.
	if _, _, s, err := (&Destination{Protocol: Protocol_PROTOCOL_UDP, Ip: dst.Addr().AsSlice(), Port: 53}).Flow(); err != nil || s.IsValid() {
		t.Errorf("no source: %v, %v", s, err)
	}
}

func TestAckOf(t *testing.T) {
	if err := AckOf(Ack()); err != nil {
		t.Errorf("AckOf(Ack()) = %v", err)
	}
	for name, f := range map[string]*Frame{
		"close": {Msg: &Frame_Close{Close: &Close{Error: "connection refused"}}},
		"data":  {Msg: &Frame_Data{Data: []byte("x")}},
		"empty": {},
	} {
		if err := AckOf(f); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
