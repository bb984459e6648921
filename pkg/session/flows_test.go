package session

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

// tunnelManager dials nothing: port 1 is refused, any other echoes back
// what it gets, prefixed, after the ack for TCP.
type tunnelManager struct {
	teleproto.UnimplementedManagerServer
	opens chan *teleproto.Destination
}

func (m *tunnelManager) Tunnel(st grpc.BidiStreamingServer[teleproto.TunnelRequest, teleproto.Frame]) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	open := first.GetOpen().GetDestination()
	m.opens <- open
	if open.GetPort() == 1 {
		return tunnel.FailWith(st, errors.New("dial tcp 10.0.0.1:1: connection refused"), teleproto.CloseReason_CLOSE_REASON_UNSPECIFIED)
	}
	if open.GetProtocol() == teleproto.Protocol_PROTOCOL_TCP {
		if err := st.Send(teleproto.Ack()); err != nil {
			return err
		}
	}
	for {
		m, err := tunnel.Recv(st)
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := st.Send(tunnel.Data(append([]byte("echo:"), m.GetData()...))); err != nil {
			return err
		}
	}
}

// roundTrip writes ping on one end of a pipe the flow serves, and reads
// what comes back until the flow closes it.
func roundTrip(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	app, flow := net.Pipe()
	done := make(chan struct{})
	go func() { defer close(done); serve(flow); flow.Close() }()
	app.Write([]byte("ping"))
	b := make([]byte, 64)
	n, _ := io.ReadAtLeast(app, b, len("echo:ping"))
	app.Close()
	<-done
	return string(b[:n])
}

// TestFlows: which flows the daemon answers itself (DNS), refuses before
// the handshake (a closed port, no manager) or prepares (every other TCP
// flow), and that UDP flows are carried too.
func TestFlows(t *testing.T) {
	d, _, _ := testDaemon(t, nil)
	d.dnsIP = netip.MustParseAddr("10.96.0.10")
	f := &flows{d: d, log: slog.New(slog.NewTextHandler(io.Discard, nil)), mem: newIdleMemory()}
	src := netip.MustParseAddrPort("198.18.0.1:40000")
	ctx := ctxT(t)

	if p, err := f.PrepareTCP(ctx, src, netip.MustParseAddrPort("10.96.0.10:53")); p != nil || err != nil {
		t.Errorf("DNS over TCP: prepared %v %v, want it left to HandleTCP", p, err)
	}
	if _, err := f.PrepareTCP(ctx, src, netip.MustParseAddrPort("10.0.0.1:80")); err == nil {
		t.Error("no manager: the flow was not refused")
	}

	m := &tunnelManager{opens: make(chan *teleproto.Destination, 8)}
	serveManager(t, d, m)
	if _, err := f.PrepareTCP(ctx, src, netip.MustParseAddrPort("10.0.0.1:1")); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("closed port: %v, want refused before the handshake", err)
	}
	<-m.opens
	p, err := f.PrepareTCP(ctx, src, netip.MustParseAddrPort("10.0.0.1:80"))
	if err != nil || p == nil {
		t.Fatalf("open port: %v %v", p, err)
	}
	if o := <-m.opens; o.GetPort() != 80 || o.GetSrcPort() != 40000 || o.GetProtocol() != teleproto.Protocol_PROTOCOL_TCP {
		t.Errorf("open %v", o)
	}
	if got := roundTrip(t, func(c net.Conn) { p.Serve(ctx, c) }); got != "echo:ping" {
		t.Errorf("prepared flow got %q", got)
	}
	p2, err := f.PrepareTCP(ctx, src, netip.MustParseAddrPort("10.0.0.1:81"))
	if err != nil {
		t.Fatal(err)
	}
	<-m.opens
	p2.Abandon()

	if got := roundTrip(t, func(c net.Conn) { f.HandleUDP(ctx, c, src, netip.MustParseAddrPort("10.0.0.1:9090")) }); got != "echo:ping" {
		t.Errorf("UDP flow got %q", got)
	}
	if o := <-m.opens; o.GetProtocol() != teleproto.Protocol_PROTOCOL_UDP {
		t.Errorf("open %v", o)
	}
}
