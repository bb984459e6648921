package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/connectivity"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"k8s.io/client-go/rest"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/device"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// fakeManager answers the intercept calls as a manager would, or with err.
type fakeManager struct {
	teleproto.ManagerClient // nil: other calls panic
	err                     error
	created, removed        []string
	sessions                []string
}

func (m *fakeManager) CreateIntercept(_ context.Context, r *teleproto.CreateInterceptRequest, _ ...grpc.CallOption) (*teleproto.Intercept, error) {
	if m.err != nil {
		return nil, m.err
	}
	m.created = append(m.created, r.GetName())
	m.sessions = append(m.sessions, r.GetSessionId())
	return &teleproto.Intercept{Name: r.GetName(), Port: r.GetPort(), LocalPort: r.GetLocalPort(), Mine: true}, nil
}

func (m *fakeManager) RemoveIntercept(_ context.Context, r *teleproto.RemoveInterceptRequest, _ ...grpc.CallOption) (*teleproto.RemoveInterceptResponse, error) {
	if m.err != nil {
		return nil, m.err
	}
	m.removed = append(m.removed, r.GetName())
	return &teleproto.RemoveInterceptResponse{}, nil
}

func (m *fakeManager) ListIntercepts(_ context.Context, r *teleproto.SessionRequest, _ ...grpc.CallOption) (*teleproto.ListInterceptsResponse, error) {
	if m.err != nil {
		return nil, m.err
	}
	var out []*teleproto.Intercept
	for _, n := range m.created {
		out = append(out, &teleproto.Intercept{Name: n, Mine: true})
	}
	return &teleproto.ListInterceptsResponse{Intercepts: out}, nil
}

// testDaemon is a daemon serving its control socket in a temporary folder
// while run runs (by default, until quit), and a client of it.
func testDaemon(t *testing.T, run func(ctx context.Context, d *Daemon) error) (*Daemon, *Control, <-chan error) {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{
		RESTConfig: &rest.Config{Host: "https://api.example:6443"}, Context: "kind-tele", Namespace: "demo",
		Manager: managerclient.Manager{Namespace: "demo", Pod: "kubectl-tele-manager-x", Version: "v1.2.3"},
		Paths:   Paths{RuntimeDir: dir, LogDir: dir}, Version: "v1.2.3",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	d := newDaemon(cfg)
	if run == nil {
		run = func(ctx context.Context, d *Daemon) error {
			select {
			case <-d.quit:
			case <-ctx.Done():
			}
			return nil
		}
	}
	l, err := listenUnix(cfg.Paths.ControlSocket())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- d.serve(ctx, l, func(ctx context.Context) error { return run(ctx, d) })
		close(done) // the cleanup's wait ends also when the test had the error
	}()
	ctl := NewControl(cfg.Paths.ControlSocket())
	t.Cleanup(func() {
		cancel()
		ctl.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("the daemon did not stop")
		}
	})
	return d, ctl, done
}

func (d *Daemon) setManager(m teleproto.ManagerClient, session string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.client, d.sessionID = &managerclient.Client{ManagerClient: m}, session
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestControlStatus: status over the socket is the daemon's, phases by
// their names, and quit ends the daemon.
func TestControlStatus(t *testing.T) {
	d, ctl, done := testDaemon(t, nil)
	ctx := ctxT(t)
	st, err := ctl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetPhase() != teleproto.ConnectPhase_CONNECT_PHASE_STARTING || st.GetNamespace() != "demo" || st.GetContext() != "kind-tele" ||
		st.GetServer() != "https://api.example:6443" || st.GetControlSocket() != d.cfg.Paths.ControlSocket() || st.GetClientVersion() != "v1.2.3" {
		t.Errorf("status %+v", st)
	}
	if err := ctl.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("daemon ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("quit did not end the daemon")
	}
	if _, err := ctl.Status(ctx); !errors.Is(err, ErrNotRunning) {
		t.Errorf("status after quit: %v, want ErrNotRunning", err)
	}
}

// TestControlNotRunning: no socket, or one a dead daemon left, is "no
// session", not a transport error.
func TestControlNotRunning(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	for _, sock := range []string{filepath.Join(dir, "none.sock"), stale} {
		ctl := NewControl(sock)
		if _, err := ctl.Status(ctxT(t)); !errors.Is(err, ErrNotRunning) {
			t.Errorf("%s: %v, want ErrNotRunning", sock, err)
		}
		if err := ctl.Quit(ctxT(t)); !errors.Is(err, ErrNotRunning) {
			t.Errorf("quit %s: %v, want ErrNotRunning", sock, err)
		}
		ctl.Close()
	}
}

// TestControlWatch: connect sees each phase as the daemon reaches it, the
// helper's request while it waits for the device, and a failure's error.
func TestControlWatch(t *testing.T) {
	step := make(chan struct{})
	_, ctl, _ := testDaemon(t, func(ctx context.Context, d *Daemon) error {
		<-step
		d.update(func(s *teleproto.DaemonStatus) {
			s.Phase = teleproto.ConnectPhase_CONNECT_PHASE_WAITING_FOR_DEVICE
			s.HelperRequest = helperRequest(d.cfg, nil, device.DefaultAddr.Addr(), nil, []string{"cluster.local"}, deviceChoice{Addr: device.DefaultAddr})
		})
		<-step
		return errors.New("the manager went away")
	})
	var seen []string
	var helperReq string
	err := ctl.Watch(ctxT(t), func(st *teleproto.DaemonStatus) (bool, error) {
		seen = append(seen, st.GetPhase().Label())
		if st.GetPhase() == teleproto.ConnectPhase_CONNECT_PHASE_WAITING_FOR_DEVICE {
			b, err := protojson.Marshal(st.GetHelperRequest())
			if err != nil {
				return true, err
			}
			helperReq = string(b)
		}
		if st.GetPhase() == teleproto.ConnectPhase_CONNECT_PHASE_FAILED {
			return true, errors.New(st.GetError())
		}
		step <- struct{}{}
		return false, nil
	})
	if err == nil || err.Error() != "the manager went away" {
		t.Errorf("watch ended with %v", err)
	}
	if got := strings.Join(seen, " "); got != "starting waiting-for-device failed" {
		t.Errorf("phases seen: %s", got)
	}
	if !strings.Contains(helperReq, `"socketPath":"`) || !strings.Contains(helperReq, `"nameserver":"198.18.0.1"`) {
		t.Errorf("helper request %s", helperReq)
	}
}

// TestControlWatchWaits: connect watches a daemon it just started, before
// its socket exists.
func TestControlWatchWaits(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "daemon.sock")
	ctl := NewControl(sock)
	defer ctl.Close()
	d := newDaemon(Config{RESTConfig: &rest.Config{}, Paths: Paths{RuntimeDir: dir, LogDir: dir}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	served := make(chan error, 1)
	go func() {
		// Listen once Watch has tried the socket and failed: the
		// connection to the daemon leaves idle for a transient failure.
		for st := ctl.conn.GetState(); st != connectivity.TransientFailure; st = ctl.conn.GetState() {
			if !ctl.conn.WaitForStateChange(ctx, st) {
				served <- fmt.Errorf("the connection stayed %s", st)
				return
			}
		}
		l, err := listenUnix(sock)
		if err != nil {
			served <- err
			return
		}
		served <- d.serve(ctx, l, func(ctx context.Context) error { <-ctx.Done(); return nil })
	}()
	err := ctl.Watch(ctx, func(*teleproto.DaemonStatus) (bool, error) { return true, nil })
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Error(err)
	}
}

// TestControlIntercepts: intercept, list and leave reach the manager in the
// session's name; the daemon keeps what it must restore on a new manager.
func TestControlIntercepts(t *testing.T) {
	d, ctl, _ := testDaemon(t, nil)
	ctx := ctxT(t)
	if _, err := ctl.Intercept(ctx, &teleproto.CreateInterceptRequest{Name: "echo", Port: 8080}, nil); status.Code(err) != codes.Unavailable ||
		!strings.Contains(err.Error(), "reconnecting") {
		t.Errorf("intercept between managers: %v, want Unavailable", err)
	}
	m := &fakeManager{}
	d.setManager(m, "session-1")
	ic, err := ctl.Intercept(ctx, &teleproto.CreateInterceptRequest{Name: "echo", Port: 8080, LocalPort: 3000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ic.GetName() != "echo" || ic.GetLocalPort() != 3000 || m.sessions[0] != "session-1" {
		t.Errorf("intercept %v, sessions %v", ic, m.sessions)
	}
	if d.intercepts["echo"] == nil {
		t.Error("the daemon does not keep the intercept to restore")
	}
	ics, err := ctl.List(ctx)
	if err != nil || len(ics) != 1 || ics[0].GetName() != "echo" {
		t.Errorf("list: %v %v", ics, err)
	}
	if err := ctl.Leave(ctx, "echo"); err != nil {
		t.Fatal(err)
	}
	if len(m.removed) != 1 || d.intercepts["echo"] != nil {
		t.Errorf("leave: removed %v, kept %v", m.removed, d.intercepts)
	}
}

// TestControlPassesManagerErrors: the manager's code and message reach the
// plugin unchanged (Unavailable too: the daemon answered, its socket is
// fine), and a failed intercept is not kept to restore.
func TestControlPassesManagerErrors(t *testing.T) {
	for _, code := range []codes.Code{codes.AlreadyExists, codes.NotFound, codes.PermissionDenied, codes.FailedPrecondition, codes.InvalidArgument, codes.Unavailable} {
		t.Run(code.String(), func(t *testing.T) {
			d, ctl, _ := testDaemon(t, nil)
			msg := "intercept echo: the manager says " + code.String()
			d.setManager(&fakeManager{err: status.Error(code, msg)}, "s")
			ctx := ctxT(t)
			_, err := ctl.Intercept(ctx, &teleproto.CreateInterceptRequest{Name: "echo"}, nil)
			if s := status.Convert(err); s.Code() != code || s.Message() != msg {
				t.Errorf("intercept: %v, want %s %q", err, code, msg)
			}
			if len(d.intercepts) != 0 {
				t.Errorf("kept %v", d.intercepts)
			}
			if err := ctl.Leave(ctx, "echo"); status.Code(err) != code {
				t.Errorf("leave: %v", err)
			}
			if _, err := ctl.List(ctx); status.Code(err) != code {
				t.Errorf("list: %v", err)
			}
		})
	}
}

// TestControlVersions: a plugin and a daemon of different control versions
// refuse each other, naming both versions and what to do; quit still works.
func TestControlVersions(t *testing.T) {
	_, ctl, done := testDaemon(t, nil)
	ctx := ctxT(t)
	future := teleproto.ControlVersion(teleproto.CurrentControlVersion + 1)
	calls := map[string]func() error{
		"status": func() error { _, err := ctl.rpc.Status(ctx, &teleproto.StatusRequest{Version: future}); return err },
		"list":   func() error { _, err := ctl.rpc.List(ctx, &teleproto.ListRequest{Version: future}); return err },
		"leave":  func() error { _, err := ctl.rpc.Leave(ctx, &teleproto.LeaveRequest{Version: future}); return err },
		"intercept": func() error {
			_, err := ctl.rpc.Intercept(ctx, &teleproto.InterceptRequest{Version: future})
			return err
		},
		"watch": func() error {
			st, err := ctl.rpc.Watch(ctx, &teleproto.StatusRequest{Version: future})
			if err == nil {
				_, err = st.Recv()
			}
			return err
		},
	}
	for name, call := range calls {
		err := call()
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("%s of version 2: %v, want FailedPrecondition", name, err)
		}
		for _, want := range []string{"control protocol 2", "speaks 1", "kubectl-tele v1.2.3", "kubectl tele quit, then kubectl tele connect again"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: refusal %q does not say %q", name, err, want)
			}
		}
	}
	// The plugin's side: a daemon that answers with another version.
	err := checkDaemonVersion(&teleproto.DaemonStatus{Version: future, ClientVersion: "v9"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "speaks control protocol 1") ||
		!strings.Contains(err.Error(), "(kubectl-tele v9) speaks 2") {
		t.Errorf("plugin's refusal: %v", err)
	}
	if _, err := ctl.rpc.Quit(ctx, &teleproto.QuitRequest{Version: future}); err != nil {
		t.Errorf("quit of another version: %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("quit of another version did not end the daemon")
	}
}

// TestControlPprof: Go's profiles stay on the socket, over HTTP/1.
func TestControlPprof(t *testing.T) {
	d, _, _ := testDaemon(t, nil)
	socket := d.cfg.Paths.ControlSocket()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://daemon/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "goroutine") {
		t.Errorf("pprof index: %s %.200s", resp.Status, b)
	}
}
