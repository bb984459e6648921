package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// tokenManager records the tokens of the Watch calls that reach it, and
// refuses them (so an agent that got through exits too).
type tokenManager struct {
	teleproto.UnimplementedAgentServiceServer
	mu     sync.Mutex
	tokens []string
}

func (m *tokenManager) Watch(st teleproto.AgentService_WatchServer) error {
	md, _ := metadata.FromIncomingContext(st.Context())
	m.mu.Lock()
	m.tokens = append(m.tokens, md.Get(teleproto.AgentTokenHeader)...)
	m.mu.Unlock()
	return status.Error(codes.Unauthenticated, "refused by the test")
}

// serveTLS serves m over TLS 1.3 on loopback with pair, and returns the
// address.
func serveTLS(t *testing.T, m teleproto.AgentServiceServer, pair testcert.Pair) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair.TLS(t)}})))
	teleproto.RegisterAgentServiceServer(gs, m)
	done := make(chan struct{})
	go func() { defer close(done); gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return lis.Addr().String()
}

// TestRefusesManagerOfAnotherCA: over real TLS, an agent refuses, and exits
// without sending its token, a manager whose certificate another CA signed
// for the right name, or its own CA for another name; it reaches, with its
// token, the manager its CA signed for the name, by a name or by address.
func TestRefusesManagerOfAnotherCA(t *testing.T) {
	const ns = "team"
	nsCA, other := testcert.NewCA(t, "namespace CA"), testcert.NewCA(t, "impostor CA")
	name := teleproto.ManagerServerName(ns)
	for _, tc := range []struct {
		name    string
		pair    testcert.Pair
		reached bool
	}{
		{"signed by another CA", other.Leaf(t, name), false},
		{"for another namespace's name", nsCA.Leaf(t, teleproto.ManagerServerName("other")), false},
		{"the namespace's", nsCA.Leaf(t, "kubectl-tele-manager", name), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &tokenManager{}
			addr := serveTLS(t, m, tc.pair)
			creds, err := newManagerCreds(nsCA.PEM, ns)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := dialManager(addr, creds)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			a, _ := newTestAgent(t)
			a.creds, a.cfg.Token = creds, "the-token"
			a.client = teleproto.NewAgentServiceClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = a.watchLoop(ctx)
			if !errors.Is(err, errRetired) {
				t.Fatalf("watchLoop: %v, want the agent to exit", err)
			}
			var verr *tls.CertificateVerificationError
			if refusedCert := errors.As(err, &verr); refusedCert == tc.reached {
				t.Errorf("watchLoop: %v; want it refused for the certificate: %v", err, !tc.reached)
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if tc.reached && (len(m.tokens) != 1 || m.tokens[0] != "the-token") {
				t.Errorf("the manager got tokens %q, want the agent's once", m.tokens)
			}
			if !tc.reached && len(m.tokens) > 0 {
				t.Errorf("the impostor got the token")
			}
		})
	}
}

func TestNewManagerCredsNeedsCA(t *testing.T) {
	if _, err := newManagerCreds(nil, "team"); err == nil {
		t.Error("no CA accepted")
	}
}
