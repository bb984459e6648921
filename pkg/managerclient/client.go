package managerclient

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

// Client is a gRPC connection to a manager over one port-forward.
type Client struct {
	teleproto.ManagerClient
	pf   *PortForward
	conn *grpc.ClientConn
}

// Dial opens a port-forward to the manager pod and a gRPC connection on it.
func Dial(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, m *Manager) (*Client, error) {
	pf, err := DialPortForward(ctx, cfg, client, m.Namespace, m.Pod, ManagerPort)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("passthrough:///"+m.Namespace+"/"+m.Pod,
		grpc.WithContextDialer(pf.Dial),
		// The port-forward is the API server's TLS connection, authenticated
		// with the user's credentials; the stream inside it needs no more.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The manager's listener may come up after its pod runs: retry soon.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
		// Each write to the port-forward stream is one SPDY data frame, and
		// each frame costs the API server, kubelet and runtime a copy and an
		// allocation: fewer, larger writes (gRPC's default buffer is 32 KiB).
		grpc.WithWriteBufferSize(256<<10),
		grpc.WithReadBufferSize(256<<10),
		experimental.WithBufferPool(tunnel.BufferPool),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(tunnel.Codec)),
		grpc.WithInitialWindowSize(tunnel.StreamWindow),
		grpc.WithInitialConnWindowSize(tunnel.ConnWindow),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		pf.Close()
		return nil, fmt.Errorf("grpc to manager %s/%s: %w", m.Namespace, m.Pod, err)
	}
	return &Client{ManagerClient: teleproto.NewManagerClient(conn), pf: pf, conn: conn}, nil
}

// Done is closed when the port-forward under the client is gone.
func (c *Client) Done() <-chan bool { return c.pf.Done() }

// Close ends the gRPC connection and the port-forward.
func (c *Client) Close() error {
	err := c.conn.Close()
	c.pf.Close()
	return err
}

// Arrive starts a session, retrying while the manager is still starting to
// listen (the pod runs before its listener is up).
func (c *Client) Arrive(ctx context.Context, namespace, clientVersion string) (*teleproto.ArriveResponse, error) {
	host, _ := os.Hostname()
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	req := &teleproto.ArriveRequest{
		ProtocolVersion: teleproto.CurrentProtocolVersion,
		ClientVersion:   clientVersion,
		Hostname:        host,
		User:            name,
		Namespace:       namespace,
	}
	var lastErr error
	for delay := 100 * time.Millisecond; ; delay = min(delay*2, 2*time.Second) {
		resp, err := c.ManagerClient.Arrive(ctx, req, grpc.WaitForReady(true))
		if err == nil {
			return resp, nil
		}
		if code := status.Code(err); code == codes.FailedPrecondition || code == codes.InvalidArgument || code == codes.PermissionDenied {
			return nil, fmt.Errorf("manager refused the session: %s", status.Convert(err).Message())
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("start a session with the manager: %w", lastErr)
		case <-time.After(delay):
		}
	}
}
