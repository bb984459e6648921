package manager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/identity"
	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/state"
	"github.com/kubectl-tele/kubectl-tele/pkg/match"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

// The mechanisms, short: mechNone is an intercept's before its first
// pods' agents are attached (and, in a request, "the manager chooses").
const (
	mechNone     = teleproto.Mechanism_MECHANISM_UNSPECIFIED
	mechNftables = teleproto.Mechanism_MECHANISM_NFTABLES
	mechService  = teleproto.Mechanism_MECHANISM_SERVICE
)

// CreateIntercept implements teleproto.ManagerServer.
func (s *Server) CreateIntercept(ctx context.Context, req *teleproto.CreateInterceptRequest) (*teleproto.Intercept, error) {
	ss, err := s.lookup(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	m, err := match.Parse(req.GetHttpMatch())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	kind, err := interceptKind(req.GetKind())
	if err != nil {
		return nil, err
	}
	if req.GetPort() == 0 || req.GetPort() > 65535 || req.GetLocalPort() == 0 || req.GetLocalPort() > 65535 {
		return nil, status.Errorf(codes.InvalidArgument, "ports must be 1..65535 (port %d, local port %d)", req.GetPort(), req.GetLocalPort())
	}
	cert, err := interceptTLS(req)
	if err != nil {
		return nil, err
	}
	name := req.GetName()
	if name == "" {
		name = req.GetWorkloadName()
	}
	sel, err := state.PodSetOf(req.GetTarget())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%s/%s: %v", strings.ToLower(req.GetWorkloadKind()), req.GetWorkloadName(), err)
	}
	ic := &state.Intercept{
		PB: &teleproto.Intercept{
			Name: name, Namespace: s.cfg.Namespace,
			WorkloadKind: req.GetWorkloadKind(), WorkloadName: req.GetWorkloadName(),
			Port: req.GetPort(), LocalPort: req.GetLocalPort(), HttpMatch: req.GetHttpMatch(),
			Owner: ss.user.Name, OwnerHost: ss.host(), TlsSecret: cert.GetSecret(), LocalTls: req.GetLocalTls(), Kind: kind,
		},
		Session: ss.id, Owner: ss.user, Pods: sel, Match: m, ResetIdle: req.GetResetIdleConnections(),
		TLS: cert, LocalTLS: req.GetLocalTls(),
	}
	// Asked before anything is changed: the pods the agents go to, and
	// RBAC about them for the session's identity.
	pods, err := s.runningPods(ctx, sel)
	if err != nil {
		return nil, err
	}
	mech := req.GetMech()
	need := identity.Reviews(s.cfg.Namespace, podNames(pods), serviceNames(req.GetTarget()), mech != mechNftables)
	denied, err := s.authorize(ctx, ss.user, need)
	if err != nil {
		return nil, err
	}
	if len(denied) > 0 {
		msg := identity.Refusal(ss.user, s.cfg.Namespace, denied)
		s.log.WarnContext(ctx, "intercept refused", "intercept", name, "user", ss.user.Name, "host", ss.host(), "why", msg)
		return nil, status.Error(codes.PermissionDenied, msg)
	}
	// Then what any session may know: conflicts (list shows every
	// intercept), and a workload without running pods.
	s.imu.Lock()
	err = s.table.Conflict(ic)
	s.imu.Unlock()
	if err != nil {
		return nil, err
	}
	if len(pods) == 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "%s/%s has no running pod to intercept; check kubectl get pods -n %s", strings.ToLower(req.GetWorkloadKind()), req.GetWorkloadName(), s.cfg.Namespace)
	}
	for _, p := range pods {
		state.Decide(ic, p.Name, true)
	}
	ic.Want, ic.Creating, ic.ServicePorts = mech, true, req.GetTarget().GetServicePorts()
	s.imu.Lock()
	id, err := s.table.Add(ic) // reserved while the agents are attached
	s.imu.Unlock()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.removeIntercept(id, "creation failed")
		}
	}()
	// The controller attaches the agents, decides the mechanism from the
	// first one's hello, retargets the Services and pushes the routes: here
	// the intercept waits until they are applied.
	if s.ctl == nil {
		return nil, status.Error(codes.Unavailable, "the manager's controller is not running")
	}
	s.ctl.enqueue(pods)
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	names, err := s.awaitApplied(wctx, ic)
	cancel()
	if err != nil {
		return nil, err
	}
	ok = true
	bypassing, reset := s.bypassing(names, req.GetPort())
	s.imu.Lock()
	ic.Creating = false
	mech = ic.Mech
	if ic.Wiretap() {
		// Agents without wiretaps are not sent the route: their pods
		// are the uncovered ones.
		names, ic.PB.UncoveredPods = s.coverage(ctx, id, sel)
	}
	ic.PB.Pods = names
	state.SetState(ic.PB, len(names) > 0)
	ic.PB.BypassingConnections, ic.PB.ResetConnections = bypassing, reset
	out := ic.Clone(ss.id)
	s.imu.Unlock()
	s.log.InfoContext(ctx, "intercept created", "intercept", name, "id", id, "workload", req.GetWorkloadKind()+"/"+req.GetWorkloadName(),
		"port", req.GetPort(), "match", m.String(), "tls_secret", cert.GetSecret(), "mechanism", mech.Word(), "owner", ic.PB.Owner, "host", ic.PB.OwnerHost, "pods", names,
		"bypassing_connections", bypassing, "reset_connections", reset)
	s.kick()
	return out, nil
}

// awaitApplied waits, on s.changes, until the controller has applied ic
// being created: its mechanism decided, its Services retargeted if it
// needs them, and its routes applied by the agent of every running pod it
// selects. It returns those pods' names; the reason the controller gave
// (ic.Failed); or, once ctx ends, what it still waits for.
func (s *Server) awaitApplied(ctx context.Context, ic *state.Intercept) ([]string, error) {
	for {
		changed := s.changes.wait()
		pods, err := s.runningPods(ctx, ic.Pods)
		if err != nil {
			return nil, err
		}
		// A pod that came since is the controller's to ask RBAC about.
		s.imu.Lock()
		failed, mech, retargeted := ic.Failed, ic.Mech, ic.Retargeted
		pods = slices.DeleteFunc(pods, func(p *corev1.Pod) bool { return !ic.AllowedOn(p.Name) })
		s.imu.Unlock()
		if failed != nil {
			return nil, failed
		}
		var names []string
		missing := ""
		for _, p := range pods {
			// Applied: the agent applied the routes the table gives it.
			ac := s.agent(p.Name)
			switch {
			case ac == nil && missing == "":
				missing = fmt.Sprintf("the agent in pod %s did not connect to the manager (kubectl logs -n %s %s -c %s)", p.Name, s.cfg.Namespace, p.Name, s.hintAgent(ctx, p.Name))
			case ac != nil && mech != mechNone && !ac.appliedAll(s.routesFor(p)) && missing == "":
				missing = fmt.Sprintf("agent in pod %s did not apply its routes", p.Name)
			}
			names = append(names, p.Name)
		}
		switch {
		case mech == mechNone && missing == "":
			missing = "no agent decided the mechanism"
		case mech == mechService && !retargeted && missing == "":
			missing = "the Services are not retargeted yet"
		case len(names) == 0 && missing == "":
			missing = "no running pod left"
		}
		if missing == "" {
			return names, nil
		}
		select {
		case <-ctx.Done():
			return nil, status.Errorf(codes.DeadlineExceeded, "%s: %v", missing, ctx.Err())
		case <-changed:
		}
	}
}

// RemoveIntercept implements teleproto.ManagerServer.
func (s *Server) RemoveIntercept(ctx context.Context, req *teleproto.RemoveInterceptRequest) (*teleproto.RemoveInterceptResponse, error) {
	ss, err := s.lookup(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	s.imu.Lock()
	ic, err := s.table.Own(ss.id, req.GetName())
	s.imu.Unlock()
	if err != nil {
		return nil, err
	}
	// Returns once the agents have dropped it: `leave` returning means the
	// app answers again.
	s.removeIntercept(ic.ID, "left")
	return &teleproto.RemoveInterceptResponse{}, nil
}

// removeIntercept ends an intercept in two steps: the agents stop routing
// to it (while connections they already route still reach the laptop), then
// it is forgotten and the controller restores what its mechanism changed
// (the Services it retargeted), which it waits for.
func (s *Server) removeIntercept(id, reason string) {
	s.imu.Lock()
	ic, ok := s.table.MarkRemoving(id)
	s.imu.Unlock()
	if !ok {
		return
	}
	// A retarget under way finishes first, so that what it changed is
	// restored below.
	s.ctl.retargeted(id)
	dctx, cancel := context.WithTimeout(s.drain, 15*time.Second)
	defer cancel()
	if ic.Mech != mechNone && dctx.Err() == nil {
		s.kick() // the controller sends the agents their routes without it
		if err := s.awaitDropped(dctx, ic); err != nil {
			s.log.Warn("agents slow to drop intercept", "intercept", id, "err", err)
		}
	}
	s.imu.Lock()
	s.table.Delete(ic)
	s.imu.Unlock()
	if ic.Mech == mechService && s.ctl != nil {
		// The controller restores them; not under drain: a shutdown
		// still waits for it (Close keeps the controller's restores
		// running until it has removed every intercept).
		rctx, cancel := context.WithTimeout(s.restore, 20*time.Second)
		defer cancel()
		s.ctl.restoreServices(rctx, ic.Services)
	}
	s.log.Info("intercept removed", "intercept", id, "reason", reason)
	s.kick()
}

// awaitDropped waits, on s.changes, until no agent of ic's running pods
// applies routes that hold it.
func (s *Server) awaitDropped(ctx context.Context, ic *state.Intercept) error {
	for {
		changed := s.changes.wait()
		pods, err := s.runningPods(ctx, ic.Pods)
		if err != nil {
			return err
		}
		holding := ""
		for _, p := range pods {
			if ac := s.agent(p.Name); ac != nil && ac.holds(ic.ID) {
				holding = p.Name
				break
			}
		}
		if holding == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the agent in pod %s still holds it: %w", holding, ctx.Err())
		case <-changed:
		}
	}
}

// endSessionIntercepts removes a departed session's intercepts.
func (s *Server) endSessionIntercepts(ss *session) {
	s.imu.Lock()
	ids := s.table.OfSession(ss.id)
	s.imu.Unlock()
	for _, id := range ids {
		s.removeIntercept(id, "session ended")
	}
}

// ListIntercepts implements teleproto.ManagerServer.
func (s *Server) ListIntercepts(ctx context.Context, req *teleproto.SessionRequest) (*teleproto.ListInterceptsResponse, error) {
	ss, err := s.lookup(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	s.imu.Lock()
	ics := s.table.All()
	s.imu.Unlock()
	out := &teleproto.ListInterceptsResponse{}
	for _, ic := range ics {
		// Which pods it covers now, not at its creation: a rollout or a
		// scale-up since has other pods, which join as their agents do.
		covered, uncovered := s.coverage(ctx, ic.ID, ic.Pods)
		s.imu.Lock()
		pb := ic.Clone(ss.id)
		s.imu.Unlock()
		if ic.Mech != mechNone {
			pb.Pods, pb.UncoveredPods = covered, uncovered
			state.SetState(pb, len(covered) > 0)
		}
		if ic.Wiretap() {
			pb.CopiesSent, pb.CopiesDropped = s.wiretapCopies(ic.ID)
		}
		out.Intercepts = append(out.Intercepts, pb)
	}
	// Two developers' intercepts may share a name: then by owner.
	sort.Slice(out.Intercepts, func(i, j int) bool {
		a, b := out.Intercepts[i], out.Intercepts[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Owner < b.Owner
	})
	return out, nil
}

// Dials implements teleproto.ManagerServer: it streams the session's dial
// requests until the session or the stream ends.
func (s *Server) Dials(req *teleproto.SessionRequest, stream teleproto.Manager_DialsServer) error {
	ss, err := s.lookup(stream.Context(), req.GetSessionId())
	if err != nil {
		return err
	}
	detach := ss.link.attach()
	defer detach()
	// Headers now, not with the first dial: a client that waits for them
	// (st.Header()) knows the manager counts its stream.
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-ss.ctx.Done():
			return status.Error(codes.NotFound, context.Cause(ss.ctx).Error())
		case d := <-ss.dials:
			if err := stream.Send(d); err != nil {
				return err
			}
		}
	}
}

// laptopAnswerTimeout bounds the wait for a laptop to answer a DialRequest
// with its Tunnel stream. A connected laptop answers within a round trip
// (before it dials its local port), so a laptop that takes longer is taken
// for gone, and the agent serves the request with the app: an intercept
// whose laptop is silent must not hold the workload's traffic. The agent's
// own bound on the whole dial (router.Config.LaptopDialTimeout, 3 s) is
// longer, so that the manager's reason reaches it first.
const laptopAnswerTimeout = 1500 * time.Millisecond

// connectToLaptop hands an agent's intercepted connection to the laptop that
// owns the intercept: it asks the laptop to dial (DialRequest), waits for its
// Tunnel stream, and splices the two. id is the intercept's id, which the
// agent had in its route. When no laptop can take the connection it fails
// with CLOSE_REASON_LAPTOP_GONE, at once when the laptop's Dials stream has
// ended, so that the agent serves it with the app instead.
func (s *Server) connectToLaptop(agent teleproto.AgentService_ConnectServer, id string) error {
	ctx := agent.Context()
	gone := func(format string, args ...any) error {
		err := fmt.Errorf(format, args...)
		s.log.Debug("intercepted connection served by the app", "intercept", id, "reason", err)
		return tunnel.FailWith(agent, err, teleproto.CloseReason_CLOSE_REASON_LAPTOP_GONE)
	}
	s.imu.Lock()
	ic := s.table.Get(id)
	s.imu.Unlock()
	if ic == nil {
		return gone("intercept %s has ended", id)
	}
	// The laptop knows its intercepts by name.
	interceptName := ic.PB.Name
	ss := s.sessions.get(ic.Session)
	if ss == nil {
		return gone("intercept %s: the session ended", interceptName)
	}
	down := ss.link.gone()
	select {
	case <-down:
		return gone("intercept %s: the laptop of %s is not connected (its daemon stopped or lost its port-forward)", interceptName, ic.Who())
	default:
	}
	dialID, w, end := s.dials.open()
	defer end()
	timeout := time.NewTimer(laptopAnswerTimeout)
	defer timeout.Stop()
	select {
	case ss.dials <- &teleproto.DialRequest{DialId: dialID, Intercept: interceptName, LocalPort: ic.PB.LocalPort}:
	case <-down:
		return gone("intercept %s: the laptop of %s disconnected", interceptName, ic.Who())
	case <-timeout.C:
		return gone("intercept %s: the laptop of %s does not take connections", interceptName, ic.Who())
	case <-ss.ctx.Done():
		return gone("intercept %s: the session ended", interceptName)
	case <-ctx.Done():
		return nil
	}
	var laptop teleproto.Manager_TunnelServer
	select {
	case laptop = <-w.laptop:
	case <-down:
		return gone("intercept %s: the laptop of %s disconnected", interceptName, ic.Who())
	case <-timeout.C:
		return gone("intercept %s: the laptop of %s did not answer within %s", interceptName, ic.PB.Owner, laptopAnswerTimeout)
	case <-ss.ctx.Done():
		return gone("intercept %s: the session ended", interceptName)
	case <-ctx.Done():
		return nil
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // the laptop's stream ends with its handler: end with the session too
		select {
		case <-ss.ctx.Done():
			cancel()
		case <-sctx.Done():
		}
	}()
	err := tunnel.Splice(sctx, agent, laptop, tunnel.HalfClose(agent), tunnel.HalfClose(laptop))
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Debug("intercepted connection ended", "intercept", interceptName, "err", err)
	}
	return nil
}

// answerDial is a laptop's Tunnel stream answering a DialRequest: it is
// handed to the waiting agent connection and lives until the splice ends.
func (s *Server) answerDial(stream teleproto.Manager_TunnelServer, ss *session, id string) error {
	done, err := s.dials.answer(id, stream)
	if err != nil {
		return err
	}
	select {
	case <-done:
	case <-ss.ctx.Done():
	}
	return nil
}

// runningPods returns the running, not terminating pods a selector selects:
// from the controller's informer once it has synced, else (before, and in
// tests without one) from the API server.
func (s *Server) runningPods(ctx context.Context, sel state.PodSet) ([]*corev1.Pod, error) {
	all, ok := s.ctl.cached()
	if !ok {
		list, err := s.cfg.Client.CoreV1().Pods(s.cfg.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "list pods in %s: %v", s.cfg.Namespace, err)
		}
		for i := range list.Items {
			all = append(all, &list.Items[i])
		}
	}
	var out []*corev1.Pod
	for _, p := range all {
		if podRunning(p) && sel.Has(p) {
			out = append(out, p)
		}
	}
	// In a stable order: pushRoutes and the list of pods read better so.
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func podNames(pods []*corev1.Pod) []string {
	out := make([]string, 0, len(pods))
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

// serviceNames are the Services the Service mechanism would retarget.
func serviceNames(t *teleproto.InterceptTarget) []string {
	var out []string
	for _, sp := range t.GetServicePorts() {
		out = append(out, sp.GetService())
	}
	return out
}

// agentNeed says whether pod needs an agent, which it gets with mech: a
// pod that an intercept selects (being created, first), whose owner RBAC
// lets attach one. newPod (see the agent's --new-pod) is for a pod that
// started less than newPodAge ago and joins an intercept already applied:
// a new pod of an intercepted workload.
func (s *Server) agentNeed(pod *corev1.Pod) (mech teleproto.Mechanism, newPod, need bool) {
	s.imu.Lock()
	defer s.imu.Unlock()
	if pending := s.table.Pending(pod); len(pending) > 0 {
		return pending[0].Want, false, true
	}
	if mech := s.table.MechFor(pod); mech != mechNone {
		return mech, pod.Status.StartTime == nil || time.Since(pod.Status.StartTime.Time) < newPodAge, true
	}
	return mechNone, false, false
}

// decide records RBAC's answer about pod for intercept id, if it is still
// there.
func (s *Server) decide(id, pod string, allowed bool) {
	s.imu.Lock()
	defer s.imu.Unlock()
	if ic := s.table.Get(id); ic != nil {
		state.Decide(ic, pod, allowed)
	}
}

func podRunning(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning
}

// routesFor is the routes of pod's agent (see
// state.Table.RoutesFor).
func (s *Server) routesFor(pod *corev1.Pod) []*teleproto.AgentRoute {
	s.imu.Lock()
	defer s.imu.Unlock()
	return s.table.RoutesFor(pod)
}

func orUnknown(v string) string {
	if v == "" {
		return "(version unknown)"
	}
	return v
}
