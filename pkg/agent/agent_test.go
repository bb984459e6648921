package agent

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/kubectl-tele/kubectl-tele/pkg/agent/redirect"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// fakeRedirector records the rules the agent last set.
type fakeRedirector struct{ rules []redirect.Rule }

func (f *fakeRedirector) Set(rules []redirect.Rule) error {
	f.rules = slices.Clone(rules)
	return nil
}

func freePort(t *testing.T) uint32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint32(l.Addr().(*net.TCPAddr).Port)
}

func newTestAgent(t *testing.T) (*Agent, *fakeRedirector) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	t.Cleanup(func() { cancel(); g.Wait() })
	red := &fakeRedirector{}
	a := &Agent{log: slog.New(slog.DiscardHandler), red: red, ports: map[uint32]*port{}, held: map[uint32]bool{}, group: g, gctx: gctx}
	return a, red
}

// TestRedirectHeldAfterHeaderRoutes: a port that has had --http-match routes
// stays redirected when they go, so connections opened between intercepts
// reach the router; a port that only had a global route does not; losing the
// manager drops every redirect.
func TestRedirectHeldAfterHeaderRoutes(t *testing.T) {
	a, red := newTestAgent(t)
	web, raw := freePort(t), freePort(t)
	route := func(id string, port, agentPort uint32, match ...string) *teleproto.AgentRoute {
		return &teleproto.AgentRoute{Intercept: id, Port: port, AgentPort: agentPort, Mechanism: "nftables", HttpMatch: match}
	}
	header := route("alice", 8080, web, "x-dev=alice")
	global := route("bob", 9090, raw)
	want := func(step string, rules ...redirect.Rule) {
		t.Helper()
		if !slices.Equal(red.rules, rules) {
			t.Errorf("%s: rules %v, want %v", step, red.rules, rules)
		}
	}

	if err := a.apply([]*teleproto.AgentRoute{header, global}); err != nil {
		t.Fatal(err)
	}
	want("both intercepts", redirect.Rule{Port: 8080, ToPort: uint16(web)}, redirect.Rule{Port: 9090, ToPort: uint16(raw)})

	if err := a.apply(nil); err != nil {
		t.Fatal(err)
	}
	want("both left", redirect.Rule{Port: 8080, ToPort: uint16(web)})

	if err := a.apply([]*teleproto.AgentRoute{global}); err != nil {
		t.Fatal(err)
	}
	want("global again", redirect.Rule{Port: 8080, ToPort: uint16(web)}, redirect.Rule{Port: 9090, ToPort: uint16(raw)})

	a.failOpen()
	want("manager lost")

	if err := a.apply(nil); err != nil {
		t.Fatal(err)
	}
	want("a new manager, no intercepts")
}
