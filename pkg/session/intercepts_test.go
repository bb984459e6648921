package session

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

// dialsManager is a manager that asks the laptop for the dials given, and
// hands each Tunnel stream the laptop opens to the test.
type dialsManager struct {
	teleproto.UnimplementedManagerServer
	dials   chan *teleproto.DialRequest
	tunnels chan grpc.BidiStreamingServer[teleproto.TunnelRequest, teleproto.Frame]
	ended   chan struct{} // closed when the test is done with the tunnels
}

func (m *dialsManager) Dials(_ *teleproto.SessionRequest, st grpc.ServerStreamingServer[teleproto.DialRequest]) error {
	for {
		select {
		case r := <-m.dials:
			if err := st.Send(r); err != nil {
				return err
			}
		case <-st.Context().Done():
			return nil
		}
	}
}

func (m *dialsManager) Tunnel(st grpc.BidiStreamingServer[teleproto.TunnelRequest, teleproto.Frame]) error {
	m.tunnels <- st
	select {
	case <-m.ended:
	case <-st.Context().Done():
	}
	return nil
}

// serveManager serves m on a Unix socket and makes it the daemon's manager.
func serveManager(t *testing.T, d *Daemon, m teleproto.ManagerServer) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "manager.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	teleproto.RegisterManagerServer(srv, m)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix:"+l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	d.setManager(teleproto.NewManagerClient(conn), "s1")
}

// TestAnswerDial: an agent's connection for this laptop is dialed to the
// local port: nothing there is told to the agent as LOCAL_PORT_CLOSED (it
// answers 502), a local server gets the bytes both ways.
func TestAnswerDial(t *testing.T) {
	d, _, _ := testDaemon(t, nil)
	m := &dialsManager{dials: make(chan *teleproto.DialRequest), ended: make(chan struct{}),
		tunnels: make(chan grpc.BidiStreamingServer[teleproto.TunnelRequest, teleproto.Frame])}
	t.Cleanup(func() { close(m.ended) })
	serveManager(t, d, m)
	ctx, cancel := context.WithCancel(ctxT(t))
	loop := make(chan error, 1)
	go func() { loop <- d.dialsLoop(ctx) }()
	defer func() {
		cancel()
		<-loop
	}()

	// A port nothing listens on: one of a listener closed at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().(*net.TCPAddr).Port
	l.Close()
	m.dials <- &teleproto.DialRequest{DialId: "d1", Intercept: "echo", LocalPort: uint32(closed)}
	st := <-m.tunnels
	open, err := st.Recv()
	if err != nil || open.GetOpen().GetDialId() != "d1" || open.GetOpen().GetSessionId() != "s1" {
		t.Fatalf("first message %v %v, want the dial's TunnelOpen", open, err)
	}
	fail, err := st.Recv()
	if err != nil || fail.GetClose().GetReason() != teleproto.CloseReason_CLOSE_REASON_LOCAL_PORT_CLOSED ||
		!strings.Contains(fail.GetClose().GetError(), "start your local server there") {
		t.Fatalf("for a closed port: %v %v", fail, err)
	}

	// A local server: the ack says the laptop took it, then data.
	srv, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		c, err := srv.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 4)
		if _, err := c.Read(b); err == nil {
			c.Write([]byte("pong"))
		}
	}()
	m.dials <- &teleproto.DialRequest{DialId: "d2", Intercept: "echo", LocalPort: uint32(srv.Addr().(*net.TCPAddr).Port)}
	st = <-m.tunnels
	if msg, err := st.Recv(); err != nil || msg.GetOpen().GetDialId() != "d2" {
		t.Fatalf("first message %v %v", msg, err)
	}
	if msg, err := st.Recv(); err != nil || msg.GetOpened() == nil {
		t.Fatalf("ack %v %v, want opened", msg, err)
	}
	if err := st.Send(tunnel.Data([]byte("ping"))); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		msg, err := st.Recv()
		if err != nil {
			t.Fatalf("no reply: %v", err)
		}
		if string(msg.GetData()) == "pong" {
			break
		}
		select {
		case <-deadline:
			t.Fatal("no reply")
		default:
		}
	}
}
