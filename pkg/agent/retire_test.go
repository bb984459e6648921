package agent

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// refusingManager answers every Watch with code.
type refusingManager struct {
	teleproto.UnimplementedAgentServiceServer
	code  codes.Code
	calls atomic.Int32
}

func (m *refusingManager) Watch(teleproto.AgentService_WatchServer) error {
	m.calls.Add(1)
	return status.Error(m.code, "refused")
}

// TestRetiresWhenRefused: an agent whose token a manager refuses (another
// install), or that a newer agent of its pod supersedes, exits; one that
// finds the manager unavailable keeps trying.
func TestRetiresWhenRefused(t *testing.T) {
	for _, tc := range []struct {
		code   codes.Code
		retire bool
	}{
		{codes.Unauthenticated, true},
		{codes.PermissionDenied, true},
		{codes.Unavailable, false},
		{codes.FailedPrecondition, false},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			m := &refusingManager{code: tc.code}
			lis := bufconn.Listen(1 << 16)
			gs := grpc.NewServer()
			teleproto.RegisterAgentServiceServer(gs, m)
			go gs.Serve(lis)
			t.Cleanup(gs.Stop)
			conn, err := grpc.NewClient("passthrough:///bufconn",
				grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
				grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			a, _ := newTestAgent(t)
			a.client = teleproto.NewAgentServiceClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			err = a.watchLoop(ctx)
			if got := errors.Is(err, errRetired); got != tc.retire {
				t.Errorf("watchLoop: %v, want retired %v", err, tc.retire)
			}
			if n := m.calls.Load(); tc.retire && n != 1 || !tc.retire && n < 2 {
				t.Errorf("%d Watch calls", n)
			}
		})
	}
}

// otherProtocolManager sends routes of another agent protocol.
type otherProtocolManager struct {
	teleproto.UnimplementedAgentServiceServer
}

func (otherProtocolManager) Watch(st teleproto.AgentService_WatchServer) error {
	if _, err := st.Recv(); err != nil {
		return err
	}
	if err := st.Send(&teleproto.AgentRoutes{Version: 1, ProtocolVersion: 3}); err != nil {
		return err
	}
	<-st.Context().Done()
	return nil
}

// TestWatchRefusesManagerProtocol: routes of another agent protocol are
// refused, not applied, with an error naming both versions.
func TestWatchRefusesManagerProtocol(t *testing.T) {
	lis := bufconn.Listen(1 << 16)
	gs := grpc.NewServer()
	teleproto.RegisterAgentServiceServer(gs, otherProtocolManager{})
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	a, _ := newTestAgent(t)
	a.client = teleproto.NewAgentServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = a.watch(ctx)
	if err == nil || !strings.Contains(err.Error(), "agent protocol 3") || !strings.Contains(err.Error(), "agent protocol 2") {
		t.Errorf("watch: %v, want the refusal naming both versions", err)
	}
}
