package plugin

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

func TestWarnIfNothingListens(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	var out bytes.Buffer
	warnIfNothingListens(context.Background(), &out, port)
	if out.Len() != 0 {
		t.Errorf("with a listener: %q, want nothing", out.String())
	}
	l.Close()
	warnIfNothingListens(context.Background(), &out, port)
	if !strings.Contains(out.String(), "nothing listens on localhost:") || !strings.Contains(out.String(), "502") {
		t.Errorf("without a listener: %q", out.String())
	}
}
