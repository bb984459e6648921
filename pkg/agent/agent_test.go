package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/kubectl-tele/kubectl-tele/pkg/agent/redirect"
	"github.com/kubectl-tele/kubectl-tele/pkg/agent/router"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// fakeRedirector records the rules the agent last set, and answers
// Bypassing with the connections the test put in open.
type fakeRedirector struct {
	rules  []redirect.Rule
	open   map[uint16]int           // bypassing connections by port
	resets map[uint16]time.Duration // the last resetIdle asked, by port
}

func (f *fakeRedirector) Set(rules []redirect.Rule) error {
	f.rules = slices.Clone(rules)
	return nil
}

func (f *fakeRedirector) Rules() []redirect.Rule { return slices.Clone(f.rules) }

func (f *fakeRedirector) Bypassing(port uint16, resetIdle time.Duration) (redirect.Conns, error) {
	if f.resets == nil {
		f.resets = map[uint16]time.Duration{}
	}
	f.resets[port] = resetIdle
	c := redirect.Conns{Bypassing: f.open[port]}
	if resetIdle > 0 {
		c.Reset = c.Bypassing
		f.open[port] = 0
	}
	return c, nil
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
	a := &Agent{log: slog.New(slog.DiscardHandler), red: red, ports: map[uint32]*port{}, held: map[uint32]bool{},
		resetting: map[uint16]bool{}, started: time.Now(), group: g, gctx: gctx, serveCtx: gctx}
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
		return &teleproto.AgentRoute{Intercept: id, Port: port, AgentPort: agentPort, Mech: teleproto.Mechanism_MECHANISM_NFTABLES, HttpMatch: match}
	}
	header := route("alice", 8080, web, "x-dev=alice")
	global := route("bob", 9090, raw)
	want := func(step string, rules ...redirect.Rule) {
		t.Helper()
		if !slices.Equal(red.rules, rules) {
			t.Errorf("%s: rules %v, want %v", step, red.rules, rules)
		}
	}

	if _, err := a.apply([]*teleproto.AgentRoute{header, global}); err != nil {
		t.Fatal(err)
	}
	want("both intercepts", redirect.Rule{Port: 8080, ToPort: uint16(web)}, redirect.Rule{Port: 9090, ToPort: uint16(raw)})

	if _, err := a.apply(nil); err != nil {
		t.Fatal(err)
	}
	want("both left", redirect.Rule{Port: 8080, ToPort: uint16(web)})

	if _, err := a.apply([]*teleproto.AgentRoute{global}); err != nil {
		t.Fatal(err)
	}
	want("global again", redirect.Rule{Port: 8080, ToPort: uint16(web)}, redirect.Rule{Port: 9090, ToPort: uint16(raw)})

	a.failOpen()
	want("manager lost")

	if _, err := a.apply(nil); err != nil {
		t.Fatal(err)
	}
	want("a new manager, no intercepts")
}

// The agent reports, per redirected port, the connections that bypass the
// redirect, and resets the idle ones only where a route asks.
func TestBypassingReported(t *testing.T) {
	a, red := newTestAgent(t)
	red.open = map[uint16]int{8080: 3, 9090: 2}
	web, raw := freePort(t), freePort(t)
	routes := []*teleproto.AgentRoute{
		{Intercept: "alice", Port: 8080, AgentPort: web, Mech: teleproto.Mechanism_MECHANISM_NFTABLES, HttpMatch: []string{"x-dev=alice"}, ResetIdleConnections: true},
		{Intercept: "bob", Port: 9090, AgentPort: raw, Mech: teleproto.Mechanism_MECHANISM_NFTABLES},
	}
	got, err := a.apply(routes)
	if err != nil {
		t.Fatal(err)
	}
	want := []*teleproto.PortConnections{{Port: 8080, Bypassing: 3, ResetConnections: 3}, {Port: 9090, Bypassing: 2}}
	if !slices.EqualFunc(got, want, func(x, y *teleproto.PortConnections) bool { return proto.Equal(x, y) }) {
		t.Errorf("report %v, want %v", got, want)
	}
	if red.resets[8080] != idleBeforeReset || red.resets[9090] != 0 {
		t.Errorf("resetIdle asked: %v, want %v on 8080 only", red.resets, idleBeforeReset)
	}
}

// TestNewPodResetsEarlyConnections: the agent of a new pod resets, once
// quiet, the connections that reached the app before its redirect, with no
// route asking; an agent of an older pod only reports them. On synctest's
// clock: the agent's port is made without a listener, so every goroutine
// of the agent is in the bubble and waits on it.
func TestNewPodResetsEarlyConnections(t *testing.T) {
	for _, newPod := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			a, red := newTestAgent(t)
			a.cfg.NewPod = newPod
			red.open = map[uint16]int{8080: 2}
			a.ports[8080] = &port{agentPort: 48080, router: router.New(router.Config{AppAddr: "127.0.0.1:8080"})}
			route := &teleproto.AgentRoute{Intercept: "alice", Port: 8080, AgentPort: 48080, Mech: teleproto.Mechanism_MECHANISM_NFTABLES, HttpMatch: []string{"x-dev=alice"}}
			got, err := a.apply([]*teleproto.AgentRoute{route})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].GetBypassing() != 2 || got[0].GetResetConnections() != 0 {
				t.Errorf("new pod %v: report %v, want 2 bypassing, none reset by the route", newPod, got)
			}
			time.Sleep(newPodWindow) // the whole window
			synctest.Wait()
			a.mu.Lock()
			defer a.mu.Unlock()
			left, asked := red.open[8080], red.resets[8080]
			switch {
			case newPod && (left != 0 || asked != newPodQuiet):
				t.Errorf("new pod: %d connections left, quiet asked %v; want 0, %v", left, asked, newPodQuiet)
			case !newPod && left != 2:
				t.Errorf("old pod: %d connections left, want the 2 untouched", left)
			}
		})
	}
}

// TestCloseError: only the manager's typed LAPTOP_GONE makes the router
// serve with the app; the laptop's LOCAL_PORT_CLOSED, and a Close without
// a reason, stay a 502, whatever their text says.
func TestCloseError(t *testing.T) {
	for _, tc := range []struct {
		reason teleproto.CloseReason
		text   string
		gone   bool
	}{
		{teleproto.CloseReason_CLOSE_REASON_LAPTOP_GONE, "the laptop of me@host is not connected", true},
		{teleproto.CloseReason_CLOSE_REASON_LOCAL_PORT_CLOSED, "nothing answers on the laptop's localhost:7070", false},
		{teleproto.CloseReason_CLOSE_REASON_UNSPECIFIED, "the laptop of me@host is not connected", false},
	} {
		err := closeError("echo", &teleproto.Close{Error: tc.text, Reason: tc.reason})
		if got := errors.Is(err, router.ErrLaptopGone); got != tc.gone {
			t.Errorf("%v: laptop gone = %v, want %v (%v)", tc.reason, got, tc.gone, err)
		}
		if !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%v: %q does not say %q", tc.reason, err, tc.text)
		}
	}
}

// TestRedirectByMechanism: the agent redirects a route's port for the
// nftables mechanism only.
func TestRedirectByMechanism(t *testing.T) {
	nft, svc := teleproto.Mechanism_MECHANISM_NFTABLES, teleproto.Mechanism_MECHANISM_SERVICE
	for _, tc := range []struct {
		name     string
		mech     teleproto.Mechanism
		redirect bool
	}{
		{"nftables", nft, true},
		{"service", svc, false},
		{"unspecified", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, red := newTestAgent(t)
			ap := freePort(t)
			r := &teleproto.AgentRoute{Intercept: "alice", Port: 8080, AgentPort: ap, Mech: tc.mech}
			if _, err := a.apply([]*teleproto.AgentRoute{r}); err != nil {
				t.Fatal(err)
			}
			var want []redirect.Rule
			if tc.redirect {
				want = []redirect.Rule{{Port: 8080, ToPort: uint16(ap)}}
			}
			if !slices.Equal(red.rules, want) {
				t.Errorf("rules %v, want %v", red.rules, want)
			}
		})
	}
}
