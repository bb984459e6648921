package plugin

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
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

func TestBypassNote(t *testing.T) {
	ic := func(mech string, open, reset uint32) *teleproto.Intercept {
		return &teleproto.Intercept{Port: 8080, Mechanism: mech, BypassingConnections: open, ResetConnections: reset}
	}
	tests := []struct {
		name  string
		ic    *teleproto.Intercept
		reset bool
		want  []string // substrings, in order; none: an empty note
	}{
		{"nothing open", ic("nftables", 0, 0), false, nil},
		{"nothing open, reset asked", ic("nftables", 0, 0), true, nil},
		{"open, no reset asked", ic("nftables", 3, 0), false, []string{"Warning: opened before the intercept, so not through the agent: 3 connections to port 8080.", "--reset-idle-connections resets the idle ones"}},
		{"one open", ic("nftables", 1, 0), false, []string{": 1 connection to port 8080."}},
		{"all reset", ic("nftables", 2, 2), true, []string{"  reset, idle since before the intercept: 2 connections; their clients reconnect through it"}},
		{"some busy", ic("nftables", 3, 1), true, []string{"1 connection;", "\nWarning: busy, so not reset: 2 connections to port 8080"}},
		{"service mechanism", ic("service", 0, 0), true, []string{"Warning: --reset-idle-connections needs the nftables mechanism; with service,"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := bypassNote(tt.ic, tt.reset)
			if len(tt.want) == 0 && got != "" {
				t.Errorf("got %q, want nothing", got)
			}
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("got %q, want it to contain %q (in order)", got, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}
