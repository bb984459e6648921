package session

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

func TestHeartbeatLost(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{status.Error(codes.NotFound, "no session s1"), true}, // the manager restarted or ended the session
		{status.Error(codes.Unavailable, "connection closed"), true},
		{status.Error(codes.DeadlineExceeded, "timeout"), true},
		{status.Error(codes.PermissionDenied, "no"), false},
		{status.Error(codes.Internal, "bug"), false},
		{errors.New("other"), false},
	}
	for _, tt := range tests {
		if got := heartbeatLost(tt.err); got != tt.want {
			t.Errorf("heartbeatLost(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// remainManager answers Remain with the errors of script in turn, then nil.
type remainManager struct {
	fakeManager
	mu     sync.Mutex
	script []error
	calls  int
}

func (m *remainManager) Remain(context.Context, *teleproto.SessionRequest, ...grpc.CallOption) (*teleproto.RemainResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if len(m.script) == 0 {
		return &teleproto.RemainResponse{}, nil
	}
	err := m.script[0]
	m.script = m.script[1:]
	return &teleproto.RemainResponse{}, err
}

// phases records the daemon's phases from now on, by their labels.
func phases(ctx context.Context, d *Daemon) func() []string {
	var mu sync.Mutex
	var seen []string
	go func() {
		for {
			st, changed := d.snapshot()
			mu.Lock()
			if l := st.GetPhase().Label(); len(seen) == 0 || seen[len(seen)-1] != l {
				seen = append(seen, l)
			}
			mu.Unlock()
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// TestKeepAlive: a lost session reconnects, through failed attempts (one of
// an incompatible manager, which status reports), and comes back connected;
// a heartbeat the manager refuses for another reason does not reconnect.
func TestKeepAlive(t *testing.T) {
	d, _, _ := testDaemon(t, nil)
	d.heartbeat = 5 * time.Millisecond
	d.setPhase(teleproto.ConnectPhase_CONNECT_PHASE_CONNECTED)
	first := &remainManager{script: []error{status.Error(codes.PermissionDenied, "not now"), status.Error(codes.NotFound, "no session")}}
	d.setManager(first, "s1")
	second := &remainManager{}
	var attempts int
	d.redial = func(ctx context.Context) error {
		attempts++
		switch attempts {
		case 1:
			return errors.New("manager pod not ready")
		case 2:
			return &managerclient.IncompatibleError{Namespace: "demo", ClientVersion: "v1.2.3", ClientProtocol: 1, ManagerVersion: "v9", ManagerProtocol: 2}
		}
		d.setManager(second, "s2")
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seen := phases(ctx, d)
	done := make(chan error, 1)
	go func() { done <- d.keepAlive(ctx, nil) }()
	for {
		second.mu.Lock()
		n := second.calls
		second.mu.Unlock()
		if n > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("keepAlive ended: %v", err)
		case <-ctx.Done():
			t.Fatalf("no heartbeat on the new session; attempts %d, phases %v", attempts, seen())
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("keepAlive ended with %v", err)
	}
	if attempts != 3 {
		t.Errorf("%d reconnect attempts, want 3", attempts)
	}
	if got := strings.Join(seen(), " "); got != "connected reconnecting connected" {
		t.Errorf("phases %s", got)
	}
	if st, _ := d.snapshot(); !strings.Contains(st.GetError(), "v9") {
		t.Errorf("status error %q does not name the incompatible manager", st.GetError())
	}
	if first.calls != 2 {
		t.Errorf("%d heartbeats to the lost manager, want 2 (refused, then lost)", first.calls)
	}
}

// TestReconnectEndsWithCtx: the daemon ending stops the attempts.
func TestReconnectEndsWithCtx(t *testing.T) {
	d, _, _ := testDaemon(t, nil)
	d.redial = func(context.Context) error { return errors.New("no manager") }
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := d.reconnect(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("reconnect: %v", err)
	}
}

// TestRestoreIntercepts: on a new manager the session's intercepts are
// created again in the new session's name; one the new manager refuses is
// dropped and named in status.
func TestRestoreIntercepts(t *testing.T) {
	d, _, _ := testDaemon(t, nil)
	d.intercepts["echo"] = &teleproto.CreateInterceptRequest{Name: "echo", SessionId: "old", Port: 8080}
	d.intercepts["web"] = &teleproto.CreateInterceptRequest{Name: "web", SessionId: "old", Port: 80}
	m := &refusing{refuse: "web"}
	d.setManager(m, "new")
	d.restoreIntercepts(ctxT(t))
	if len(m.created) != 1 || m.created[0] != "echo" || m.sessions[0] != "new" {
		t.Errorf("restored %v in sessions %v", m.created, m.sessions)
	}
	if d.intercepts["web"] != nil || d.intercepts["echo"] == nil {
		t.Errorf("kept %v", d.intercepts)
	}
	st, _ := d.snapshot()
	if want := "intercepts ended by a manager restart: web (bob's intercept web takes those requests)"; st.GetError() != want {
		t.Errorf("status error %q, want %q", st.GetError(), want)
	}
}

type refusing struct {
	fakeManager
	refuse string
}

func (m *refusing) CreateIntercept(ctx context.Context, r *teleproto.CreateInterceptRequest, o ...grpc.CallOption) (*teleproto.Intercept, error) {
	if r.GetName() == m.refuse {
		return nil, status.Error(codes.AlreadyExists, "bob's intercept web takes those requests")
	}
	return m.fakeManager.CreateIntercept(ctx, r, o...)
}
