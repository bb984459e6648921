package manager

// The agents registered with this manager: their Watch streams, the routes
// sent to each and the versions they applied, and their Connect streams.

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/state"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// agentConn is a registered agent: one per pod.
type agentConn struct {
	hello   *teleproto.AgentHello
	updates chan *teleproto.AgentRoutes // latest wins
	mu      sync.Mutex
	applied uint64
	conns   []*teleproto.PortConnections // reported with applied
	changed chan struct{}                // closed and replaced when applied changes
	done    chan struct{}
	// lastSent is the routes last sent, so reconcile sends only changes:
	// each update rebuilds the agent's upstreams and nftables rules.
	lastSent []*teleproto.AgentRoute
	// sentVersion is the version lastSent went with.
	sentVersion uint64
	// taps are the counters its wiretaps last reported, by intercept id.
	taps map[string]*teleproto.WiretapCounters
}

// sendRoutes sends routes to the agent, unless they equal what it was last
// sent and force is false. It returns the version to wait for.
func (s *Server) sendRoutes(ac *agentConn, routes []*teleproto.AgentRoute, force bool) uint64 {
	ac.mu.Lock()
	same := slices.EqualFunc(ac.lastSent, routes, func(a, b *teleproto.AgentRoute) bool { return proto.Equal(a, b) })
	if same && !force {
		ac.mu.Unlock()
		return 0
	}
	ac.lastSent = routes
	v := s.routeVersion.Add(1)
	ac.sentVersion = v
	ac.mu.Unlock()
	send(ac.updates, &teleproto.AgentRoutes{Version: v, Routes: routes, ProtocolVersion: teleproto.CurrentAgentProtocolVersion})
	return v
}

// applies reports whether the agent has applied routes that hold the
// intercept id.
func (a *agentConn) applies(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.applied < a.sentVersion {
		return false // what it applied before may or may not hold id: say no
	}
	return slices.ContainsFunc(a.lastSent, func(r *teleproto.AgentRoute) bool { return r.GetIntercept() == id })
}

// appliedAll reports whether the agent has applied routes, the last it
// was sent.
func (a *agentConn) appliedAll(routes []*teleproto.AgentRoute) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied >= a.sentVersion && slices.EqualFunc(a.lastSent, routes, func(a, b *teleproto.AgentRoute) bool { return proto.Equal(a, b) })
}

// holds reports whether the agent may still route the intercept id: it was
// sent routes that hold it, or has not applied those that dropped it.
func (a *agentConn) holds(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied < a.sentVersion || slices.ContainsFunc(a.lastSent, func(r *teleproto.AgentRoute) bool { return r.GetIntercept() == id })
}

// coverage splits the running pods that selector selects into those whose
// agent applies the intercept id and the others.
func (s *Server) coverage(ctx context.Context, id string, selector state.PodSet) (covered, uncovered []string) {
	pods, err := s.runningPods(ctx, selector)
	if err != nil {
		return nil, nil
	}
	for _, p := range pods {
		if ac := s.agent(p.Name); ac != nil && ac.applies(id) {
			covered = append(covered, p.Name)
		} else {
			uncovered = append(uncovered, p.Name)
		}
	}
	return covered, uncovered
}

func (a *agentConn) waitApplied(ctx context.Context, v uint64) error {
	for {
		a.mu.Lock()
		ok, ch := a.applied >= v, a.changed
		a.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-a.done:
			return errors.New("agent disconnected")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// agentServer implements teleproto.AgentServiceServer for Server.
type agentServer struct {
	teleproto.UnimplementedAgentServiceServer
	s *Server
}

// authInterceptor admits only callers holding the namespace's agent token.
func (s *Server) authStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	md, _ := metadata.FromIncomingContext(ss.Context())
	tok := md.Get(teleproto.AgentTokenHeader)
	if len(tok) != 1 || s.agentToken == "" || subtle.ConstantTimeCompare([]byte(tok[0]), []byte(s.agentToken)) != 1 {
		return status.Error(codes.Unauthenticated, "not an agent of this namespace")
	}
	return handler(srv, ss)
}

// Watch implements teleproto.AgentServiceServer.
func (a *agentServer) Watch(stream teleproto.AgentService_WatchServer) error {
	s := a.s
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHello()
	if h == nil || h.GetPod() == "" {
		return status.Error(codes.InvalidArgument, "the first report must be a hello naming the pod")
	}
	if v := h.GetProtocolVersion(); v != teleproto.CurrentAgentProtocolVersion {
		return status.Errorf(codes.FailedPrecondition, "the agent in pod %s (kubectl-tele %s) speaks agent protocol %d, this manager (kubectl-tele %s) agent protocol %d: restart the pod (kubectl delete pod) so that it gets a current agent",
			h.GetPod(), orUnknown(h.GetVersion()), int32(v), orUnknown(s.cfg.Version), int32(teleproto.CurrentAgentProtocolVersion))
	}
	if err := s.admitAgent(stream.Context(), h); err != nil {
		s.log.Info("agent refused", "pod", h.GetPod(), "container", h.GetContainer(), "err", err)
		return err
	}
	ac := &agentConn{hello: h, updates: make(chan *teleproto.AgentRoutes, 1), changed: make(chan struct{}), done: make(chan struct{})}
	s.agents.register(ac)
	s.log.Info("agent registered", "pod", h.GetPod(), "container", h.GetContainer(), "canRedirect", h.GetCanRedirect(), "version", h.GetVersion())
	defer func() {
		s.agents.unregister(ac)
		s.log.Info("agent gone", "pod", h.GetPod())
	}()
	s.kickPod(h.GetPod())

	ctx := stream.Context()
	errc := make(chan error, 1)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			ac.mu.Lock()
			ac.noteWiretaps(r.GetWiretaps())
			applied := r.GetApplied() > ac.applied
			if applied {
				ac.applied = r.GetApplied()
				ac.conns = r.GetConnections()
				close(ac.changed)
				ac.changed = make(chan struct{})
			}
			ac.mu.Unlock()
			if applied {
				s.changes.fire()
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ac.done:
			return status.Error(codes.Aborted, "replaced by a newer connection of the same agent")
		case err := <-errc:
			return err
		case u := <-ac.updates:
			if err := stream.Send(u); err != nil {
				return err
			}
		}
	}
}

// admitAgent refuses, with PermissionDenied, an agent that a newer agent of
// its pod supersedes: two agents in a pod would fight over its agent ports
// and its redirect table. On PermissionDenied (as on Unauthenticated, the
// token of another install) an agent exits, and the kernel drops its
// redirect with it (see pkg/agent); the newest agent then takes over.
func (s *Server) admitAgent(ctx context.Context, h *teleproto.AgentHello) error {
	// From the informer's cache, which has the agent's container in the
	// pod's spec once it has seen the patch that added it: waited for
	// (briefly: the patch came seconds before the container started), so
	// that a cache a little behind does not take the agent for superseded.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		changed := s.changes.wait()
		p, err := s.pod(ctx, h.GetPod())
		switch {
		case apierrors.IsNotFound(err):
			return status.Errorf(codes.PermissionDenied, "pod %s/%s is gone", s.cfg.Namespace, h.GetPod())
		case err != nil:
			// The agent retries within seconds.
			return status.Errorf(codes.Unavailable, "get pod %s/%s: %v", s.cfg.Namespace, h.GetPod(), err)
		}
		known := h.GetContainer() == "" || slices.ContainsFunc(p.Spec.EphemeralContainers, func(c corev1.EphemeralContainer) bool { return c.Name == h.GetContainer() })
		if known {
			if why := supersededBy(p, h.GetContainer()); why != "" {
				return status.Error(codes.PermissionDenied, why)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return status.Errorf(codes.Unavailable, "pod %s/%s has no container %s yet", s.cfg.Namespace, h.GetPod(), h.GetContainer())
		case <-changed:
		}
	}
}

// supersededBy says why the agent container of p (as its hello names it)
// must give way to another, or "" if it is the one to serve p: the pod's
// newest agent, the last in its spec, since ephemeral containers are only
// ever appended.
func supersededBy(p *corev1.Pod, container string) string {
	if container == "" {
		// An agent older than the names in hellos: it may serve while it
		// is the pod's only running agent. (It does not exit when refused,
		// but it has no redirect while it is refused.)
		if run := runningAgents(p); len(run) > 1 {
			return fmt.Sprintf("pod %s/%s runs the agents %s, and this one does not say which it is", p.Namespace, p.Name, strings.Join(run, ", "))
		}
		return ""
	}
	newest := newestAgent(p)
	if newest == nil || newest.Name == container {
		return ""
	}
	return fmt.Sprintf("pod %s/%s has a newer agent, %s, which takes over from %s", p.Namespace, p.Name, newest.Name, container)
}

// Connect implements teleproto.AgentServiceServer.
func (a *agentServer) Connect(stream teleproto.AgentService_ConnectServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	id := first.GetOpen().GetInterceptId()
	if id == "" {
		return status.Error(codes.InvalidArgument, "the first message must be a ConnectOpen naming the intercept")
	}
	return a.s.connectToLaptop(stream, id)
}

// bypassing is what the agents of pods last reported of port (see
// agentRegistry.connections).
func (s *Server) bypassing(pods []string, port uint32) (open, reset uint32) {
	return s.agents.connections(pods, port)
}

// send replaces a pending update with a newer one.
func send(ch chan *teleproto.AgentRoutes, u *teleproto.AgentRoutes) {
	for {
		select {
		case ch <- u:
			return
		default:
			select {
			case <-ch:
			default:
			}
		}
	}
}

func (s *Server) agent(pod string) *agentConn { return s.agents.get(pod) }

// dropAgent cuts off the registered agent of pod unless it is container.
func (s *Server) dropAgent(pod, container string) { s.agents.drop(pod, container) }

// kick asks the controller to reconcile every pod: an intercept came or went.
func (s *Server) kick() {
	if s.ctl != nil {
		s.ctl.enqueueAll()
	}
}

// kickPod asks the controller to reconcile one pod: its agent connected.
func (s *Server) kickPod(name string) {
	if s.ctl != nil {
		s.ctl.queue.Add(name)
	}
}
