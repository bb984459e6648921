package tunnel

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

func TestCodecRoundTrip(t *testing.T) {
	for _, n := range []int{0, 10, 1 << 10, 5 << 10, BufferSize} {
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
		out := new(teleproto.TunnelMessage)
		if err := Codec.Unmarshal(data, out); err != nil {
			t.Fatal(err)
		}
		data.Free()
		if !bytes.Equal(out.GetData(), in.GetData()) {
			t.Fatalf("%d bytes: round trip changed the data", n)
		}
	}
	if _, err := Codec.Marshal("not a message"); err == nil {
		t.Error("Marshal of a string: no error")
	}
}
