package manager

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// helloStream is an agent's Watch stream that says hello and nothing else.
type helloStream struct {
	grpc.ServerStream
	hello *teleproto.AgentHello
}

func (h helloStream) Context() context.Context { return context.Background() }
func (h helloStream) Recv() (*teleproto.AgentReport, error) {
	return &teleproto.AgentReport{Hello: h.hello}, nil
}
func (h helloStream) Send(*teleproto.AgentRoutes) error { return nil }

// TestWatchRefusesAgentProtocol: an agent of another agent protocol is
// refused at its hello, with both versions and what to do.
func TestWatchRefusesAgentProtocol(t *testing.T) {
	s, _ := startServer(t, testConfig(t))
	for _, v := range []teleproto.AgentProtocolVersion{teleproto.AgentProtocolVersion_AGENT_PROTOCOL_VERSION_UNSPECIFIED, 3} {
		err := (&agentServer{s: s}).Watch(helloStream{hello: &teleproto.AgentHello{ProtocolVersion: v, Pod: "web", Version: "v9"}})
		wantCode(t, "Watch", err, codes.FailedPrecondition, "pod web (kubectl-tele v9) speaks agent protocol", "agent protocol 2", "restart the pod")
	}
}
