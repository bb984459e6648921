package managerclient

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
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
	// credential finds the user's credential, for Arrive's proof; pod is
	// the manager pod, as Ensure checked it.
	credential func(context.Context) (*credential, error)
	pod        *Manager
}

// Dial opens a port-forward to the manager pod and a gRPC connection on it.
func Dial(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, m *Manager) (*Client, error) {
	pf, err := DialPortForward(ctx, cfg, client, m.Namespace, m.Pod, teleproto.ManagerPort)
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
	return &Client{ManagerClient: teleproto.NewManagerClient(conn), pf: pf, conn: conn, pod: m,
		credential: func(ctx context.Context) (*credential, error) { return credentialOf(ctx, cfg) }}, nil
}

// Done is closed when the port-forward under the client is gone; a Client
// made of a ManagerClient alone (in tests) has none, and is never done.
func (c *Client) Done() <-chan bool {
	if c.pf == nil {
		return nil
	}
	return c.pf.Done()
}

// Close ends the gRPC connection and the port-forward.
func (c *Client) Close() error {
	err := c.conn.Close()
	c.pf.Close()
	return err
}

// Arrive starts a session, retrying while the manager is still starting to
// listen (the pod runs before its listener is up), with a proof of the
// user's identity for each attempt's Challenge. A manager that speaks
// another protocol, whether it refuses the request or answers with its own
// version, gives an *IncompatibleError.
func (c *Client) Arrive(ctx context.Context, namespace, clientVersion string) (*teleproto.ArriveResponse, error) {
	host, _ := os.Hostname()
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	var cred *credential
	if c.credential != nil {
		var err error
		if cred, err = c.credential(ctx); err != nil {
			return nil, fmt.Errorf("prove who you are to the manager: %w", err)
		}
	}
	self := Self{Version: clientVersion, Protocol: teleproto.CurrentProtocolVersion}
	var lastErr error
	for delay := 100 * time.Millisecond; ; delay = min(delay*2, 2*time.Second) {
		req := &teleproto.ArriveRequest{
			ProtocolVersion: teleproto.CurrentProtocolVersion,
			ClientVersion:   clientVersion,
			Hostname:        host,
			User:            name,
			Namespace:       namespace,
		}
		var md metadata.MD
		resp, err := c.arriveOnce(ctx, req, cred, &md)
		if _, isStatus := status.FromError(err); !isStatus {
			return nil, err // the proof could not be made: trying again will not help
		}
		if err == nil {
			if p := resp.GetProtocolVersion(); p != self.Protocol {
				// It took our request but speaks another protocol: end the
				// session it made rather than let it time out.
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				_, _ = c.Depart(dctx, &teleproto.SessionRequest{SessionId: resp.GetSessionId()})
				cancel()
				h := readSkewHeaders(md)
				return nil, &IncompatibleError{Namespace: namespace, ClientVersion: clientVersion, ClientProtocol: self.Protocol,
					ManagerVersion: resp.GetManagerVersion(), ManagerProtocol: p, Sessions: max(h.sessions-1, SessionsUnknown)}
			}
			return resp, nil
		}
		code := status.Code(err)
		if code == codes.FailedPrecondition || code == codes.Unimplemented {
			// Unimplemented: it does not serve this protocol's service at all.
			h := readSkewHeaders(md)
			if code == codes.Unimplemented || (h.protocolKnown && h.protocol != self.Protocol) {
				return nil, &IncompatibleError{Namespace: namespace, ClientVersion: clientVersion, ClientProtocol: self.Protocol,
					ManagerVersion: h.version, ManagerProtocol: h.protocol, Sessions: h.sessions}
			}
		}
		if code == codes.FailedPrecondition || code == codes.InvalidArgument || code == codes.PermissionDenied || code == codes.Unauthenticated {
			return nil, fmt.Errorf("manager refused the session: %w", err)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("start a session with the manager: %w", lastErr)
		case <-time.After(delay):
		}
	}
}

// arriveOnce asks the manager for a challenge and arrives with the proof
// of cred for it. An error that is no gRPC status is the proof's.
func (c *Client) arriveOnce(ctx context.Context, req *teleproto.ArriveRequest, cred *credential, md *metadata.MD) (*teleproto.ArriveResponse, error) {
	ch, err := c.Challenge(ctx, &teleproto.ChallengeRequest{}, grpc.WaitForReady(true))
	switch {
	case status.Code(err) == codes.Unimplemented:
		// A manager of another protocol version, without Challenge: its
		// Arrive refuses ours, naming both.
	case err != nil:
		return nil, err
	case cred != nil:
		if req.Proof, err = cred.proofFor(ch, req.GetNamespace(), c.pod.PodUID); err != nil {
			return nil, err
		}
	}
	return c.ManagerClient.Arrive(ctx, req, grpc.WaitForReady(true), grpc.Header(md))
}

// Sessions asks the manager how many sessions it has, with a call of every
// protocol version that needs no session (Remain with an empty ID, which
// answers NotFound) and reads teleproto.HeaderSessions from its answer.
func (c *Client) Sessions(ctx context.Context) (int, error) {
	var md metadata.MD
	_, err := c.ManagerClient.Remain(ctx, &teleproto.SessionRequest{}, grpc.WaitForReady(true), grpc.Header(&md))
	h := readSkewHeaders(md)
	switch {
	case h.sessions != SessionsUnknown:
		return h.sessions, nil
	case err != nil && status.Code(err) != codes.NotFound:
		return 0, fmt.Errorf("ask the manager for its sessions: %w", err)
	}
	return 0, fmt.Errorf("the manager does not report its sessions (no header %s)", teleproto.HeaderSessions)
}

// CountSessions is a SessionCounter that reaches the manager's pod through
// the API server's port-forward.
func CountSessions(cfg *rest.Config, client kubernetes.Interface) SessionCounter {
	return func(ctx context.Context, ns, pod string) (int, error) {
		c, err := Dial(ctx, cfg, client, &Manager{Namespace: ns, Pod: pod})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		n, err := c.Sessions(ctx)
		if err != nil {
			return 0, fmt.Errorf("manager pod %s/%s: %w", ns, pod, err)
		}
		return n, nil
	}
}

// skewHeaders is what a manager's teleproto version headers say; the zero
// protocol and SessionsUnknown where they are missing.
type skewHeaders struct {
	version       string
	protocol      teleproto.ProtocolVersion
	protocolKnown bool
	sessions      int
}

func readSkewHeaders(md metadata.MD) skewHeaders {
	h := skewHeaders{sessions: SessionsUnknown}
	first := func(k string) (string, bool) {
		if v := md.Get(k); len(v) > 0 {
			return v[0], true
		}
		return "", false
	}
	h.version, _ = first(teleproto.HeaderVersion)
	if v, ok := first(teleproto.HeaderProtocol); ok {
		h.protocolKnown = true
		h.protocol, _ = teleproto.ParseProtocol(v) // unreadable: UNSPECIFIED, not ours
	}
	if v, ok := first(teleproto.HeaderSessions); ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			h.sessions = n
		}
	}
	return h
}
