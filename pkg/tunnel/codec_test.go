package tunnel

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// frames splits b as gRPC hands a message to the codec: in HTTP/2 frames.
func frames(b []byte) mem.BufferSlice {
	var s mem.BufferSlice
	for len(b) > 0 {
		n := min(len(b), 16<<10)
		s = append(s, mem.SliceBuffer(bytes.Clone(b[:n])))
		b = b[n:]
	}
	return s
}

func TestCodecRoundTrip(t *testing.T) {
	for _, n := range []int{0, 10, 1 << 10, pooledDataMin, pooledDataMin + 1, BufferSize - 1, BufferSize, BufferSize + 1} {
		in := Data(bytes.Repeat([]byte{byte(n)}, n))
		data, err := Codec.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		// The wire bytes are the stock proto encoding.
		want, _ := proto.Marshal(in)
		if got := data.Materialize(); !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: encoding differs from proto.Marshal", n)
		}
		out := new(teleproto.Frame)
		if err := Codec.Unmarshal(frames(want), out); err != nil {
			t.Fatal(err)
		}
		data.Free()
		if out.GetMsg() == nil || !bytes.Equal(out.GetData(), in.GetData()) {
			t.Fatalf("%d bytes: round trip changed the data", n)
		}
		pooled := cap(out.GetData()) == BufferSize
		if want := n > pooledDataMin && n <= BufferSize; pooled != want {
			t.Errorf("%d bytes: decoded into a pooled buffer: %v, want %v", n, pooled, want)
		}
		Release(out)
		if pooled && out.GetData() != nil {
			t.Errorf("%d bytes: data still there after Release", n)
		}
	}
	if _, err := Codec.Marshal("not a message"); err == nil {
		t.Error("Marshal of a string: no error")
	}
}

// Anything but a lone data field takes protobuf's path, unchanged.
func TestCodecOtherMessages(t *testing.T) {
	data := bytes.Repeat([]byte("d"), 100)
	withUnknown := protowire.AppendBytes(protowire.AppendTag(nil, dataField, protowire.BytesType), data)
	withUnknown = protowire.AppendVarint(protowire.AppendTag(withUnknown, 99, protowire.VarintType), 7)
	opened, _ := proto.Marshal(teleproto.Ack())
	closeMsg, _ := proto.Marshal(&teleproto.Frame{Msg: &teleproto.Frame_Close{Close: &teleproto.Close{Error: "refused"}}})
	for name, b := range map[string][]byte{"data and an unknown field": withUnknown, "opened": opened, "close": closeMsg} {
		got, want := new(teleproto.Frame), new(teleproto.Frame)
		if err := proto.Unmarshal(b, want); err != nil {
			t.Fatal(err)
		}
		if err := Codec.Unmarshal(frames(b), got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	if err := Codec.Unmarshal(frames([]byte{0x12, 0x05, 'a'}), new(teleproto.Frame)); err == nil {
		t.Error("a truncated data field decoded without error")
	}
}

func FuzzCodecUnmarshal(f *testing.F) {
	f.Add([]byte{0x12, 0x03, 'a', 'b', 'c'})
	f.Add([]byte{0x12, 0x80, 0x80, 0x08})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, want := new(teleproto.Frame), new(teleproto.Frame)
		werr := proto.Unmarshal(b, want)
		gerr := Codec.Unmarshal(frames(b), got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("codec error %v, protobuf error %v", gerr, werr)
		}
		if werr == nil && !proto.Equal(got, want) {
			t.Fatalf("codec decoded %v, protobuf %v", got, want)
		}
		Release(got)
	})
}
