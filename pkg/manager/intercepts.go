package manager

import (
	"context"
	"crypto/rand"
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
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-tele/kubectl-tele/pkg/agent/match"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

// intercept is one laptop's claim on a workload's port.
//
// Its name (pb.Name) is the user's and unique only among its session's
// intercepts, so that two developers' default intercepts of one workload,
// both named after it, can coexist and each leaves its own with the same
// command. The agents and the manager know it by id, unique in the
// namespace.
type intercept struct {
	id       string
	pb       *teleproto.Intercept
	session  *session
	selector podSet
	match    match.Matcher
	mech     teleproto.Mechanism
	services []string // retargeted by the Service mechanism
	removing bool     // agents are dropping it; connections still reach the laptop
	// resetIdle asks the agents to reset idle connections that bypass
	// their redirect (nftables only).
	resetIdle bool
	// tls, in memory only, is what the agents terminate TLS with
	// (tls.go); localTLS sends the matching requests on to the laptop
	// over TLS.
	tls      *teleproto.TLSCertificate
	localTLS bool
}

// AgentPort is where an agent listens for the app port port: fixed per port
// so a Service can target it on every pod (the no-capability mechanism).
func AgentPort(port uint32) uint32 { return 40000 + port%20000 }

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
	sel, err := podSetOf(req.GetTarget())
	if errors.Is(err, errNoTarget) {
		return nil, status.Errorf(codes.FailedPrecondition, "kubectl-tele %s predates resolving the workload on the laptop, which this manager (version %s) needs: upgrade kubectl-tele to %s or later, or intercept with a kubectl-tele of that version",
			orUnknown(ss.version), orUnknown(s.cfg.Version), orUnknown(s.cfg.Version))
	} else if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%s/%s: %v", strings.ToLower(req.GetWorkloadKind()), req.GetWorkloadName(), err)
	}
	ic := &intercept{
		pb: &teleproto.Intercept{
			Name: name, Namespace: s.cfg.Namespace,
			WorkloadKind: req.GetWorkloadKind(), WorkloadName: req.GetWorkloadName(),
			Port: req.GetPort(), LocalPort: req.GetLocalPort(), HttpMatch: req.GetHttpMatch(),
			Owner: ss.user + "@" + ss.hostname, TlsSecret: cert.GetSecret(), LocalTls: req.GetLocalTls(), Kind: kind,
		},
		session: ss, selector: sel, match: m, resetIdle: req.GetResetIdleConnections(),
		tls: cert, localTLS: req.GetLocalTls(),
	}
	s.imu.Lock()
	if err := conflict(s.intercepts, ic); err != nil {
		s.imu.Unlock()
		return nil, err
	}
	ic.id = newInterceptID(s.intercepts, name, ic.pb.Owner)
	s.intercepts[ic.id] = ic // reserved while the agents are attached
	s.imu.Unlock()
	ok := false
	defer func() {
		if !ok {
			s.removeIntercept(ic.id, "creation failed")
		}
	}()

	pods, err := s.runningPods(ctx, sel)
	if err != nil {
		return nil, err
	}
	if len(pods) == 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "%s/%s has no running pod to intercept; check kubectl get pods -n %s", strings.ToLower(req.GetWorkloadKind()), req.GetWorkloadName(), s.cfg.Namespace)
	}
	mech := teleproto.MechanismOf(req)
	for _, p := range pods {
		got, err := s.attachAgent(ctx, p, mech, false)
		if err != nil {
			return nil, err
		}
		if mech == mechNone {
			mech = got
		}
		if ac := s.agent(p.Name); ac != nil {
			if err := agentRefusal(ac.hello, ic, mech); err != nil {
				return nil, status.Errorf(codes.FailedPrecondition, "the agent in pod %s/%s (version %s) %v; nothing was changed", s.cfg.Namespace, p.Name, ac.hello.GetVersion(), err)
			}
		}
	}
	s.imu.Lock()
	ic.mech = mech
	ic.pb.Mech, ic.pb.Mechanism = mech, mech.Legacy()
	s.imu.Unlock()
	if mech == mechService {
		if err := s.retargetServices(ctx, ic, req.GetTarget().GetServicePorts()); err != nil {
			return nil, err
		}
	}
	names, err := s.pushRoutes(ctx, pods, 90*time.Second)
	if err != nil {
		return nil, err
	}
	ok = true
	bypassing, reset := s.bypassing(names, req.GetPort())
	s.imu.Lock()
	if ic.wiretap() {
		// Agents without wiretaps are not sent the route: their pods
		// are the uncovered ones.
		names, ic.pb.UncoveredPods = s.coverage(ctx, ic.id, sel)
	}
	ic.pb.Pods = names
	setState(ic.pb, len(names) > 0)
	ic.pb.BypassingConnections, ic.pb.ResetConnections = bypassing, reset
	out := cloneIntercept(ic, ss)
	s.imu.Unlock()
	s.log.InfoContext(ctx, "intercept created", "intercept", name, "id", ic.id, "workload", req.GetWorkloadKind()+"/"+req.GetWorkloadName(),
		"port", req.GetPort(), "match", m.String(), "tls_secret", cert.GetSecret(), "mechanism", mech.Legacy(), "owner", ic.pb.Owner, "pods", names,
		"bypassing_connections", bypassing, "reset_connections", reset)
	s.kick()
	return out, nil
}

// newInterceptID returns an id for the intercept name of owner that no
// intercept in ics has. It is opaque to the agents, which carry it back in
// Open.intercept_id; name and owner make it readable in their logs and in
// the 502s they answer, and the random part tells apart two sessions of one
// owner and an intercept created again after a leave.
func newInterceptID(ics map[string]*intercept, name, owner string) string {
	for {
		id := name + "/" + owner + "/" + rand.Text()[:8]
		if _, taken := ics[id]; !taken {
			return id
		}
	}
}

// conflict decides whether ic may join ics, the namespace's intercepts by
// id. A session may not use a name twice; another session's intercept of
// the same name is no conflict (names are per session). What would take
// another intercept's traffic is refused, naming its owner: a second global
// intercept of a workload's port, a global one over header ones or header
// ones under a global one, and a second identical match.
func conflict(ics map[string]*intercept, ic *intercept) error {
	olds := make([]*intercept, 0, len(ics))
	for _, old := range ics {
		olds = append(olds, old)
	}
	// The first conflict in a fixed order: the same state, the same message.
	sort.Slice(olds, func(i, j int) bool { return olds[i].id < olds[j].id })
	for _, old := range olds {
		if old.session != ic.session || old.pb.Name != ic.pb.Name {
			continue
		}
		if old.removing {
			return status.Errorf(codes.Unavailable, "your intercept %s is being removed; try again in a moment", ic.pb.Name)
		}
		return status.Errorf(codes.AlreadyExists, "you already have an intercept named %s (of %s/%s); leave it first or choose another name with --name",
			ic.pb.Name, strings.ToLower(old.pb.WorkloadKind), old.pb.WorkloadName)
	}
	for _, old := range olds {
		if old.removing || old.wiretap() || ic.wiretap() {
			continue // a wiretap takes nothing from anyone
		}
		if old.pb.WorkloadKind != ic.pb.WorkloadKind || old.pb.WorkloadName != ic.pb.WorkloadName || old.pb.Port != ic.pb.Port {
			continue
		}
		switch {
		case old.match.Global():
			return status.Errorf(codes.AlreadyExists, "port %d of %s/%s is intercepted as a whole by %s (intercept %s)", ic.pb.Port, strings.ToLower(ic.pb.WorkloadKind), ic.pb.WorkloadName, old.pb.Owner, old.pb.Name)
		case ic.match.Global():
			return status.Errorf(codes.AlreadyExists, "port %d of %s/%s already has filtered intercepts (%s by %s): a global intercept would take their traffic; filter yours with --http-match, --http-path* or --http-method", ic.pb.Port, strings.ToLower(ic.pb.WorkloadKind), ic.pb.WorkloadName, old.pb.Name, old.pb.Owner)
		case old.match.Equal(ic.match):
			return status.Errorf(codes.AlreadyExists, "%s/%s port %d with match %s is already intercepted by %s (intercept %s)", strings.ToLower(ic.pb.WorkloadKind), ic.pb.WorkloadName, ic.pb.Port, ic.match, old.pb.Owner, old.pb.Name)
		}
	}
	return nil
}

// ownIntercept finds the intercept that ss calls name. Another session's
// intercept of that name is refused, naming its owners: each developer
// leaves only their own.
func ownIntercept(ics map[string]*intercept, ss *session, name string) (*intercept, error) {
	var owners []string
	for _, ic := range ics {
		if ic.pb.Name != name {
			continue
		}
		if ic.session == ss {
			return ic, nil
		}
		owners = append(owners, ic.pb.Owner)
	}
	if len(owners) == 0 {
		return nil, status.Errorf(codes.NotFound, "you have no intercept named %s; kubectl tele list shows them", name)
	}
	sort.Strings(owners)
	return nil, status.Errorf(codes.PermissionDenied, "intercept %s is not yours: it belongs to %s; you can leave only your own (marked (you) in kubectl tele list)",
		name, strings.Join(slices.Compact(owners), ", "))
}

func cloneIntercept(ic *intercept, viewer *session) *teleproto.Intercept {
	out := &teleproto.Intercept{}
	*out = teleproto.Intercept{
		Name: ic.pb.Name, Namespace: ic.pb.Namespace, WorkloadKind: ic.pb.WorkloadKind, WorkloadName: ic.pb.WorkloadName,
		Port: ic.pb.Port, LocalPort: ic.pb.LocalPort, HttpMatch: append([]string(nil), ic.pb.HttpMatch...),
		Mechanism: ic.pb.Mechanism, Mech: ic.pb.Mech, Owner: ic.pb.Owner, Pods: append([]string(nil), ic.pb.Pods...),
		State: ic.pb.State, InterceptState: ic.pb.InterceptState,
		BypassingConnections: ic.pb.BypassingConnections, ResetConnections: ic.pb.ResetConnections,
		TlsSecret: ic.pb.TlsSecret, LocalTls: ic.pb.LocalTls,
		Mine: viewer != nil && ic.session == viewer, Kind: ic.pb.Kind, UncoveredPods: append([]string(nil), ic.pb.UncoveredPods...),
	}
	return out
}

// RemoveIntercept implements teleproto.ManagerServer.
func (s *Server) RemoveIntercept(ctx context.Context, req *teleproto.RemoveInterceptRequest) (*teleproto.RemoveInterceptResponse, error) {
	ss, err := s.lookup(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	s.imu.Lock()
	ic, err := ownIntercept(s.intercepts, ss, req.GetName())
	s.imu.Unlock()
	if err != nil {
		return nil, err
	}
	// Returns once the agents have dropped it: `leave` returning means the
	// app answers again.
	s.removeIntercept(ic.id, "left")
	return &teleproto.RemoveInterceptResponse{}, nil
}

// removeIntercept ends an intercept in two steps: the agents stop routing
// to it (while connections they already route still reach the laptop), then
// it is forgotten and what its mechanism changed is restored.
func (s *Server) removeIntercept(id, reason string) {
	s.imu.Lock()
	ic, ok := s.intercepts[id]
	if ok {
		ic.removing = true
	}
	s.imu.Unlock()
	if !ok {
		return
	}
	dctx, cancel := context.WithTimeout(s.drain, 20*time.Second)
	defer cancel()
	if ic.mech != mechNone && dctx.Err() == nil {
		pods, _ := s.runningPods(dctx, ic.selector)
		if _, err := s.pushRoutes(dctx, pods, 15*time.Second); err != nil {
			s.log.Warn("agents slow to drop intercept", "intercept", id, "err", err)
		}
	}
	s.imu.Lock()
	if s.intercepts[id] == ic {
		delete(s.intercepts, id)
	}
	s.imu.Unlock()
	if ic.mech == mechService {
		// Not under drain: a shutdown still restores the Services.
		rctx, cancel := context.WithTimeout(s.restore, 20*time.Second)
		defer cancel()
		s.restoreServices(rctx, ic)
	}
	s.log.Info("intercept removed", "intercept", id, "reason", reason)
	s.kick()
}

// endSessionIntercepts removes a departed session's intercepts.
func (s *Server) endSessionIntercepts(ss *session) {
	s.imu.Lock()
	var ids []string
	for id, ic := range s.intercepts {
		if ic.session == ss {
			ids = append(ids, id)
		}
	}
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
	ics := make([]*intercept, 0, len(s.intercepts))
	for _, ic := range s.intercepts {
		ics = append(ics, ic)
	}
	s.imu.Unlock()
	out := &teleproto.ListInterceptsResponse{}
	for _, ic := range ics {
		// Which pods it covers now, not at its creation: a rollout or a
		// scale-up since has other pods, which join as their agents do.
		covered, uncovered := s.coverage(ctx, ic.id, ic.selector)
		s.imu.Lock()
		pb := cloneIntercept(ic, ss)
		s.imu.Unlock()
		if ic.mech != mechNone {
			pb.Pods, pb.UncoveredPods = covered, uncovered
			setState(pb, len(covered) > 0)
		}
		if ic.wiretap() {
			pb.CopiesSent, pb.CopiesDropped = s.wiretapCopies(ic.id)
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
func (s *Server) connectToLaptop(agent teleproto.AgentService_ConnectServer, id, client string) error {
	ctx := agent.Context()
	gone := func(format string, args ...any) error {
		err := fmt.Errorf(format, args...)
		s.log.Debug("intercepted connection served by the app", "intercept", id, "client", client, "reason", err)
		return tunnel.FailWith(agent, err, teleproto.CloseReason_CLOSE_REASON_LAPTOP_GONE)
	}
	s.imu.Lock()
	ic, ok := s.intercepts[id]
	s.imu.Unlock()
	if !ok {
		return gone("intercept %s has ended", id)
	}
	ss := ic.session
	// The laptop knows its intercepts by name.
	interceptName := ic.pb.Name
	down := ss.link.gone()
	select {
	case <-down:
		return gone("intercept %s: the laptop of %s is not connected (its daemon stopped or lost its port-forward)", interceptName, ic.pb.Owner)
	default:
	}
	dialID := rand.Text()
	w := &dialWait{laptop: make(chan teleproto.Manager_TunnelServer, 1), done: make(chan struct{})}
	s.pmu.Lock()
	s.pending[dialID] = w
	s.pmu.Unlock()
	defer func() {
		s.pmu.Lock()
		delete(s.pending, dialID)
		s.pmu.Unlock()
		close(w.done)
	}()
	timeout := time.NewTimer(laptopAnswerTimeout)
	defer timeout.Stop()
	select {
	case ss.dials <- &teleproto.DialRequest{DialId: dialID, Intercept: interceptName, LocalPort: ic.pb.LocalPort, Client: client}:
	case <-down:
		return gone("intercept %s: the laptop of %s disconnected", interceptName, ic.pb.Owner)
	case <-timeout.C:
		return gone("intercept %s: the laptop of %s does not take connections", interceptName, ic.pb.Owner)
	case <-ss.ctx.Done():
		return gone("intercept %s: the session ended", interceptName)
	case <-ctx.Done():
		return nil
	}
	var laptop teleproto.Manager_TunnelServer
	select {
	case laptop = <-w.laptop:
	case <-down:
		return gone("intercept %s: the laptop of %s disconnected", interceptName, ic.pb.Owner)
	case <-timeout.C:
		return gone("intercept %s: the laptop of %s did not answer within %s", interceptName, ic.pb.Owner, laptopAnswerTimeout)
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

type dialWait struct {
	laptop chan teleproto.Manager_TunnelServer
	done   chan struct{}
}

// answerDial is a laptop's Tunnel stream answering a DialRequest: it is
// handed to the waiting agent connection and lives until the splice ends.
func (s *Server) answerDial(stream teleproto.Manager_TunnelServer, ss *session, id string) error {
	s.pmu.Lock()
	w, ok := s.pending[id]
	s.pmu.Unlock()
	if !ok {
		return status.Errorf(codes.NotFound, "dial %s is no longer wanted", id)
	}
	select {
	case w.laptop <- stream:
	default:
		return status.Errorf(codes.AlreadyExists, "dial %s already answered", id)
	}
	select {
	case <-w.done:
	case <-ss.ctx.Done():
	}
	return nil
}

// agentRefusal says why the agent that said hello cannot take ic (nil: it
// can), where its pod must not be left to the app: an intercept whose
// filters or TLS it would not apply would leave its pod's matching requests
// to the app, and a wiretap it would not apply, with the Service mechanism,
// would leave its pod refusing every client (the Service points at the
// agents' port, where it does not listen). An older agent merely left out
// of a wiretap otherwise is an uncovered pod.
func agentRefusal(hello *teleproto.AgentHello, ic *intercept, mech teleproto.Mechanism) error {
	switch {
	case !ic.wiretap() && !canApply(hello, ic.match):
		return errors.New("predates path and method filters: intercept with --http-match only, or restart the workload's pods (kubectl rollout restart) so that they get a current agent")
	case ic.wiretap() && mech == mechService && !canWiretap(hello):
		return errors.New("predates wiretaps, and with the Service mechanism its pod would stop answering: restart the workload's pods (kubectl rollout restart) so that they get a current agent")
	case !canApplyTLS(hello, ic):
		return errors.New("predates TLS interception (--tls-secret): restart the workload's pods (kubectl rollout restart) so that they get a current agent, or intercept without --tls-secret")
	}
	return nil
}

// runningPods returns the running, not terminating pods a selector selects:
// from the controller's informer once it has synced, else (before, and in
// tests without one) from the API server.
func (s *Server) runningPods(ctx context.Context, sel podSet) ([]*corev1.Pod, error) {
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
		if podRunning(p) && sel.has(p) {
			out = append(out, p)
		}
	}
	// In a stable order: pushRoutes and the list of pods read better so.
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func podRunning(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning
}

// routesFor computes the routes of pod's agent, which said hello: every
// intercept that selects its pod, and that the agent can apply
// (CreateIntercept refuses the others, naming the pod; this only keeps an
// older agent that reconnects from refusing all its routes for one).
func (s *Server) routesFor(pod *corev1.Pod, hello *teleproto.AgentHello) []*teleproto.AgentRoute {
	s.imu.Lock()
	defer s.imu.Unlock()
	var out []*teleproto.AgentRoute
	for _, ic := range s.intercepts {
		if ic.mech == mechNone || ic.removing || !ic.selector.has(pod) {
			continue // not attached yet
		}
		if !canApply(hello, ic.match) || !canApplyTLS(hello, ic) || ic.wiretap() && !canWiretap(hello) {
			continue
		}
		r := &teleproto.AgentRoute{
			Intercept: ic.id, Port: ic.pb.Port, AgentPort: AgentPort(ic.pb.Port),
			Mech: ic.mech, Mechanism: ic.mech.Legacy(), HttpMatch: ic.pb.HttpMatch,
			ResetIdleConnections: ic.resetIdle && ic.mech == mechNftables,
			Tls:                  ic.tls,
			LocalTls:             ic.localTLS,
		}
		if ic.wiretap() {
			// Intercepts' routes stay as older managers sent them.
			r.Kind = teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Intercept < out[j].Intercept })
	return out
}

// podSet is the pods an intercept covers, as the laptop resolved them
// (InterceptTarget.pods): those a workload's selector selects, or one pod
// by name.
type podSet struct {
	selector labels.Selector // nil: the pod named name alone
	name     string
}

// errNoTarget: the request has no InterceptTarget, as a laptop's that
// predates it.
var errNoTarget = errors.New("no target")

// podSetOf reads the pods of a request's target.
func podSetOf(t *teleproto.InterceptTarget) (podSet, error) {
	switch p := t.GetPods().(type) {
	case *teleproto.InterceptTarget_Selector:
		sel, err := p.Selector.Selector()
		if err != nil {
			return podSet{}, fmt.Errorf("the workload's selector: %w", err)
		}
		return podSet{selector: sel}, nil
	case *teleproto.InterceptTarget_PodName:
		if p.PodName == "" {
			return podSet{}, errors.New("an empty pod name")
		}
		return podSet{name: p.PodName}, nil
	case nil:
		if t == nil {
			return podSet{}, errNoTarget
		}
		return podSet{}, errors.New("the target names no pods")
	}
	return podSet{}, fmt.Errorf("a target of unknown kind %T", t.GetPods())
}

func (p podSet) has(pod *corev1.Pod) bool {
	if p.selector == nil {
		return p.name != "" && pod.Name == p.name
	}
	return p.selector.Matches(labels.Set(pod.Labels))
}

func orUnknown(v string) string {
	if v == "" {
		return "(version unknown)"
	}
	return v
}

func (p podSet) String() string {
	if p.selector == nil {
		return "pod " + p.name
	}
	return p.selector.String()
}

// canApply reports whether an agent that said hello can apply routes with
// matcher m.
func canApply(hello *teleproto.AgentHello, m match.Matcher) bool {
	return !m.OnRequestLine() || slices.Contains(hello.GetFeatures(), teleproto.AgentFeature_AGENT_FEATURE_REQUEST_LINE_MATCH)
}

// setState says in pb whether a running pod's agent applies the intercept,
// in the enum and, for laptops that predate it, the legacy string.
func setState(pb *teleproto.Intercept, applied bool) {
	pb.InterceptState = teleproto.InterceptState_INTERCEPT_STATE_WAITING
	if applied {
		pb.InterceptState = teleproto.InterceptState_INTERCEPT_STATE_ACTIVE
	}
	pb.State = pb.InterceptState.Legacy()
}
