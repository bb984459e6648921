package managerclient

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// otherManager is a manager of another build: it answers Arrive and Remain
// as told, with the version headers it is given (none for an old one).
type otherManager struct {
	teleproto.UnimplementedManagerServer
	headers  metadata.MD
	arrive   func() (*teleproto.ArriveResponse, error)
	departed chan string
}

func (m *otherManager) Arrive(ctx context.Context, _ *teleproto.ArriveRequest) (*teleproto.ArriveResponse, error) {
	_ = grpc.SetHeader(ctx, m.headers)
	return m.arrive()
}

func (m *otherManager) Remain(ctx context.Context, _ *teleproto.SessionRequest) (*teleproto.RemainResponse, error) {
	_ = grpc.SetHeader(ctx, m.headers)
	return nil, status.Error(codes.NotFound, "no such session")
}

func (m *otherManager) Depart(_ context.Context, r *teleproto.SessionRequest) (*teleproto.DepartResponse, error) {
	m.departed <- r.GetSessionId()
	return &teleproto.DepartResponse{}, nil
}

func serve(t *testing.T, srv teleproto.ManagerServer) *Client {
	t.Helper()
	lis := bufconn.Listen(1 << 16)
	gs := grpc.NewServer()
	teleproto.RegisterManagerServer(gs, srv)
	done := make(chan error, 1)
	go func() { done <- gs.Serve(lis) }()
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		gs.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &Client{ManagerClient: teleproto.NewManagerClient(cc), conn: cc}
}

func TestArriveAtIncompatibleManager(t *testing.T) {
	v1 := metadata.Pairs(teleproto.HeaderProtocol, "1", teleproto.HeaderVersion, "v9.0.0", teleproto.HeaderSessions, "4")
	tests := []struct {
		name         string
		headers      metadata.MD
		arrive       func() (*teleproto.ArriveResponse, error)
		wantVersion  string
		wantProtocol teleproto.ProtocolVersion
		wantSessions int
		wantDepart   string
	}{
		{
			name: "refuses our protocol, says its own", headers: v1,
			arrive: func() (*teleproto.ArriveResponse, error) {
				return nil, status.Error(codes.FailedPrecondition, "protocol mismatch")
			},
			wantVersion: "v9.0.0", wantProtocol: 1, wantSessions: 4,
		},
		{
			name: "answers with its own protocol", headers: metadata.Pairs(teleproto.HeaderSessions, "3"),
			arrive: func() (*teleproto.ArriveResponse, error) {
				return &teleproto.ArriveResponse{ProtocolVersion: 1, ManagerVersion: "v9.0.0", SessionId: "s1"}, nil
			},
			// Three with ours, which it ended.
			wantVersion: "v9.0.0", wantProtocol: 1, wantSessions: 2, wantDepart: "s1",
		},
		{
			name: "does not serve this protocol's service", headers: metadata.MD{},
			arrive: func() (*teleproto.ArriveResponse, error) {
				return nil, status.Error(codes.Unimplemented, "unknown service tele.v1.Manager")
			},
			wantSessions: SessionsUnknown,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &otherManager{headers: tt.headers, arrive: tt.arrive, departed: make(chan string, 1)}
			c := serve(t, m)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := c.Arrive(ctx, testNS, "v0.5.0")
			var inc *IncompatibleError
			if !errors.As(err, &inc) {
				t.Fatalf("Arrive: %v, want an IncompatibleError", err)
			}
			want := IncompatibleError{Namespace: testNS, ClientVersion: "v0.5.0", ClientProtocol: teleproto.CurrentProtocolVersion,
				ManagerVersion: tt.wantVersion, ManagerProtocol: tt.wantProtocol, Sessions: tt.wantSessions}
			if *inc != want {
				t.Errorf("error = %+v, want %+v", *inc, want)
			}
			if !strings.Contains(err.Error(), "kubectl tele uninstall -n "+testNS) {
				t.Errorf("%q does not say what to do", err)
			}
			if tt.wantDepart != "" {
				select {
				case id := <-m.departed:
					if id != tt.wantDepart {
						t.Errorf("departed %q, want %q", id, tt.wantDepart)
					}
				default:
					t.Error("the session it made was not ended")
				}
			}
		})
	}
}

func TestArriveFailedPreconditionOfOldManager(t *testing.T) {
	// A manager from before the headers, refusing for a reason of its own:
	// its message is passed on.
	m := &otherManager{headers: metadata.MD{}, departed: make(chan string, 1),
		arrive: func() (*teleproto.ArriveResponse, error) {
			return nil, status.Error(codes.FailedPrecondition, "no thanks")
		}}
	_, err := serve(t, m).Arrive(context.Background(), testNS, "v0.5.0")
	var inc *IncompatibleError
	if errors.As(err, &inc) || err == nil || !strings.Contains(err.Error(), "no thanks") {
		t.Errorf("Arrive: %v, want the manager's own refusal", err)
	}
}

func TestSessions(t *testing.T) {
	tests := []struct {
		name    string
		headers metadata.MD
		want    int
		wantErr string
	}{
		{name: "reported", headers: metadata.Pairs(teleproto.HeaderSessions, "2"), want: 2},
		{name: "none", headers: metadata.Pairs(teleproto.HeaderSessions, "0"), want: 0},
		{name: "old manager", headers: metadata.MD{}, wantErr: "does not report"},
		{name: "garbage", headers: metadata.Pairs(teleproto.HeaderSessions, "many"), wantErr: "does not report"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serve(t, &otherManager{headers: tt.headers})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := c.Sessions(ctx)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Sessions = %d, %v; want an error with %q", n, err, tt.wantErr)
				}
				return
			}
			if err != nil || n != tt.want {
				t.Errorf("Sessions = %d, %v; want %d", n, err, tt.want)
			}
		})
	}
}
