package teleproto

import (
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// legacyOpen is Open as peers that predate its oneof declare it: fields 1
// to 9, all singular, built from this build's descriptor by taking the
// oneof and its new members out.
func legacyOpen(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	fd := protodesc.ToFileDescriptorProto(File_tele_proto)
	for _, m := range fd.GetMessageType() {
		if m.GetName() != "Open" {
			continue
		}
		var fields []*descriptorpb.FieldDescriptorProto
		for _, f := range m.GetField() {
			if f.GetNumber() > 9 {
				continue
			}
			f.OneofIndex = nil
			fields = append(fields, f)
		}
		m.Field, m.OneofDecl = fields, nil
	}
	f, err := protodesc.NewFile(fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f.Messages().ByName("Open")
}

// oldPeer marshals an Open as a peer that predates the oneof would, with
// the fields set by name.
func oldPeer(t *testing.T, fields map[string]any) []byte {
	t.Helper()
	m := dynamicpb.NewMessage(legacyOpen(t))
	for name, v := range fields {
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			t.Fatalf("the legacy Open has no field %s", name)
		}
		if p, ok := v.(Protocol); ok {
			v = protoreflect.EnumNumber(p)
		}
		m.Set(fd, protoreflect.ValueOf(v))
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newPeer(t *testing.T, c OpenCase) []byte {
	t.Helper()
	b, err := proto.Marshal(c.Message().GetOpen())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// raw is an Open of hand-made fields: tags and bytes as a peer of any
// build, even a later one, might send them.
func raw(fields ...func([]byte) []byte) []byte {
	var b []byte
	for _, f := range fields {
		b = f(b)
	}
	return b
}

func bytesField(n protowire.Number, v []byte) func([]byte) []byte {
	return func(b []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, n, protowire.BytesType), v)
	}
}

func varintField(n protowire.Number, v uint64) func([]byte) []byte {
	return func(b []byte) []byte {
		return protowire.AppendVarint(protowire.AppendTag(b, n, protowire.VarintType), v)
	}
}

// Every shape of Open, from a peer of either age, decodes to its case, and
// one that cannot be acted on is refused.
func TestOpenCaseOf(t *testing.T) {
	tcp, udp := Protocol_PROTOCOL_TCP, Protocol_PROTOCOL_UDP
	dst4 := netip.MustParseAddrPort("10.96.0.10:80")
	dst6 := netip.MustParseAddrPort("[fd00::1]:53")
	src := netip.MustParseAddrPort("100.64.0.1:40000")
	for _, tc := range []struct {
		name    string
		wire    []byte
		want    OpenCase
		wantErr string
	}{
		// Peers that predate the oneof.
		{name: "old laptop flow, TCP with ack_dial", wire: oldPeer(t, map[string]any{
			"session_id": "s1", "protocol": tcp, "dest_ip": dst4.Addr().AsSlice(), "dest_port": uint32(80),
			"src_ip": src.Addr().AsSlice(), "src_port": uint32(40000), "ack_dial": true,
		}), want: OpenFlow{SessionID: "s1", Protocol: tcp, Dest: dst4, Src: src, AckDial: true}},
		{name: "old laptop flow, UDP to IPv6, no source", wire: oldPeer(t, map[string]any{
			"session_id": "s1", "protocol": udp, "dest_ip": dst6.Addr().AsSlice(), "dest_port": uint32(53),
		}), want: OpenFlow{SessionID: "s1", Protocol: udp, Dest: dst6}},
		{name: "old laptop flow, IPv4-mapped destination", wire: oldPeer(t, map[string]any{
			"session_id": "s1", "protocol": tcp, "dest_ip": netip.AddrFrom16(dst4.Addr().As16()).AsSlice(), "dest_port": uint32(80),
		}), want: OpenFlow{SessionID: "s1", Protocol: tcp, Dest: dst4}},
		{name: "old laptop dial answer", wire: oldPeer(t, map[string]any{"session_id": "s1", "dial_id": "d1"}),
			want: OpenDialAnswer{SessionID: "s1", DialID: "d1"}},
		{name: "old agent", wire: oldPeer(t, map[string]any{"intercept_id": "i1"}),
			want: OpenIntercepted{InterceptID: "i1"}},
		{name: "old agent with a client", wire: oldPeer(t, map[string]any{
			"intercept_id": "i1", "src_ip": src.Addr().AsSlice(), "src_port": uint32(40000),
		}), want: OpenIntercepted{InterceptID: "i1", Client: src}},
		{name: "old ack (empty Open)", wire: oldPeer(t, nil), want: OpenAck{}},
		{name: "old ack with a session", wire: oldPeer(t, map[string]any{"session_id": "s1"}), want: OpenAck{}},
		{name: "old flow, 3-byte IP", wire: oldPeer(t, map[string]any{
			"session_id": "s1", "protocol": tcp, "dest_ip": []byte{1, 2, 3}, "dest_port": uint32(80),
		}), wantErr: "3 bytes"},
		{name: "old flow, no IP", wire: oldPeer(t, map[string]any{"session_id": "s1", "dest_port": uint32(80)}),
			wantErr: "unknown protocol"},
		{name: "old flow, port 0", wire: oldPeer(t, map[string]any{
			"session_id": "s1", "protocol": tcp, "dest_ip": dst4.Addr().AsSlice(),
		}), wantErr: "port 0"},
		{name: "old flow, port too big", wire: oldPeer(t, map[string]any{
			"session_id": "s1", "protocol": tcp, "dest_ip": dst4.Addr().AsSlice(), "dest_port": uint32(70000),
		}), wantErr: "port 70000"},

		// This build's constructors.
		{name: "flow", wire: newPeer(t, OpenFlow{SessionID: "s1", Protocol: tcp, Dest: dst4, Src: src, AckDial: true}),
			want: OpenFlow{SessionID: "s1", Protocol: tcp, Dest: dst4, Src: src, AckDial: true}},
		{name: "flow, UDP to IPv6, no source", wire: newPeer(t, OpenFlow{SessionID: "s1", Protocol: udp, Dest: dst6}),
			want: OpenFlow{SessionID: "s1", Protocol: udp, Dest: dst6}},
		{name: "dial answer", wire: newPeer(t, OpenDialAnswer{SessionID: "s1", DialID: "d1"}),
			want: OpenDialAnswer{SessionID: "s1", DialID: "d1"}},
		{name: "intercepted", wire: newPeer(t, OpenIntercepted{InterceptID: "i1"}), want: OpenIntercepted{InterceptID: "i1"}},
		{name: "ack", wire: newPeer(t, OpenAck{}), want: OpenAck{}},

		// Hand-made shapes.
		{name: "destination alone, without the legacy fields", wire: raw(
			bytesField(1, []byte("s1")),
			bytesField(10, raw(varintField(1, uint64(tcp)), bytesField(2, dst4.Addr().AsSlice()), varintField(3, 80))),
		), want: OpenFlow{SessionID: "s1", Protocol: tcp, Dest: dst4}},
		{name: "destination wins over legacy fields that disagree", wire: raw(
			bytesField(10, raw(varintField(1, uint64(udp)), bytesField(2, dst6.Addr().AsSlice()), varintField(3, 53))),
			varintField(2, uint64(tcp)), bytesField(3, dst4.Addr().AsSlice()), varintField(4, 80),
		), want: OpenFlow{Protocol: udp, Dest: dst6}},
		{name: "destination with a bad IP", wire: raw(
			bytesField(10, raw(varintField(1, uint64(tcp)), bytesField(2, []byte{1}), varintField(3, 80))),
			varintField(2, uint64(tcp)), bytesField(3, dst4.Addr().AsSlice()), varintField(4, 80),
		), wantErr: "1 bytes"},
		{name: "empty destination", wire: raw(bytesField(10, nil)), wantErr: "unknown protocol"},
		{name: "empty dial_id", wire: raw(bytesField(7, nil)), wantErr: "empty dial_id"},
		{name: "empty intercept_id", wire: raw(bytesField(8, nil)), wantErr: "empty intercept_id"},
		{name: "opened beside legacy destination fields", wire: raw(
			bytesField(11, nil), varintField(2, uint64(tcp)), bytesField(3, dst4.Addr().AsSlice()), varintField(4, 80),
		), want: OpenAck{}},
		{name: "the last member of the oneof wins", wire: raw(bytesField(7, []byte("d1")), bytesField(8, []byte("i1"))),
			want: OpenIntercepted{InterceptID: "i1"}},
		{name: "a later build's case alone is the ack", wire: raw(bytesField(99, []byte{1, 2})), want: OpenAck{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o Open
			if err := proto.Unmarshal(tc.wire, &o); err != nil {
				t.Fatal(err)
			}
			got, err := OpenCaseOf(&o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("OpenCaseOf = %#v, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("OpenCaseOf = %#v, %v; want %#v", got, err, tc.want)
			}
		})
	}
	if _, err := OpenCaseOf(nil); err == nil {
		t.Error("OpenCaseOf(nil): no error")
	}
}

// What this build sends reads, to a peer that predates the oneof, as the
// case it reads today: the legacy fields of a flow, dial_id, intercept_id,
// and for the ack an Open with no field it knows.
func TestOpenToOldPeer(t *testing.T) {
	tcp := Protocol_PROTOCOL_TCP
	dst := netip.MustParseAddrPort("10.96.0.10:80")
	src := netip.MustParseAddrPort("100.64.0.1:40000")
	for _, tc := range []struct {
		name string
		c    OpenCase
		want map[string]any // the fields the old peer sees set
	}{
		{"flow", OpenFlow{SessionID: "s1", Protocol: tcp, Dest: dst, Src: src, AckDial: true}, map[string]any{
			"session_id": "s1", "protocol": protoreflect.EnumNumber(tcp), "dest_ip": string(dst.Addr().AsSlice()), "dest_port": uint32(80),
			"src_ip": string(src.Addr().AsSlice()), "src_port": uint32(40000), "ack_dial": true,
		}},
		{"dial answer", OpenDialAnswer{SessionID: "s1", DialID: "d1"}, map[string]any{"session_id": "s1", "dial_id": "d1"}},
		{"intercepted", OpenIntercepted{InterceptID: "i1"}, map[string]any{"intercept_id": "i1"}},
		{"ack", OpenAck{}, map[string]any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := dynamicpb.NewMessage(legacyOpen(t))
			if err := proto.Unmarshal(newPeer(t, tc.c), m); err != nil {
				t.Fatal(err)
			}
			got := map[string]any{}
			m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
				if b, ok := v.Interface().([]byte); ok {
					got[string(fd.Name())] = string(b)
				} else {
					got[string(fd.Name())] = v.Interface()
				}
				return true
			})
			if len(got) != len(tc.want) {
				t.Errorf("old peer sees %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("old peer sees %s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

// Only an ack is an ack to a dialer; data and other cases are not.
func TestAckOf(t *testing.T) {
	if err := AckOf(OpenAck{}.Message()); err != nil {
		t.Errorf("ack: %v", err)
	}
	if err := AckOf(&TunnelMessage{Msg: &TunnelMessage_Open{Open: &Open{}}}); err != nil {
		t.Errorf("old peer's empty Open: %v", err)
	}
	for _, m := range []*TunnelMessage{
		{Msg: &TunnelMessage_Data{Data: []byte("x")}},
		OpenDialAnswer{DialID: "d"}.Message(),
		{Msg: &TunnelMessage_Open{Open: &Open{Kind: &Open_InterceptId{}}}},
	} {
		if err := AckOf(m); err == nil {
			t.Errorf("AckOf(%v): no error", m)
		}
	}
}
