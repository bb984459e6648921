package manager

import (
	"context"
	"crypto/rand"
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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// Agent plumbing: names of what the manager keeps in its namespace for the
// agents, and the metadata key of their token.
const (
	AgentSecret      = "kubectl-tele-agent"
	AgentService     = "kubectl-tele-manager"
	AgentTokenHeader = "x-tele-agent-token"
	agentTokenKey    = "token"
	agentContainer   = "tele-agent"
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
	send(ac.updates, &teleproto.AgentRoutes{Version: v, Routes: routes})
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

// coverage splits the running pods that selector selects into those whose
// agent applies the intercept id and the others.
func (s *Server) coverage(ctx context.Context, id string, selector labels.Selector) (covered, uncovered []string) {
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
	tok := md.Get(AgentTokenHeader)
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
	if h.GetProtocolVersion() != teleproto.CurrentProtocolVersion {
		return status.Errorf(codes.FailedPrecondition, "agent speaks protocol %v, this manager %v", h.GetProtocolVersion(), teleproto.CurrentProtocolVersion)
	}
	ac := &agentConn{hello: h, updates: make(chan *teleproto.AgentRoutes, 1), changed: make(chan struct{}), done: make(chan struct{})}
	s.amu.Lock()
	if old, ok := s.agents[h.GetPod()]; ok {
		close(old.done) // a reconnecting agent replaces its old stream
	}
	s.agents[h.GetPod()] = ac
	s.amu.Unlock()
	s.log.Info("agent registered", "pod", h.GetPod(), "container", h.GetContainer(), "canRedirect", h.GetCanRedirect(), "version", h.GetVersion())
	defer func() {
		s.amu.Lock()
		if s.agents[h.GetPod()] == ac {
			delete(s.agents, h.GetPod())
			close(ac.done)
		}
		s.amu.Unlock()
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
			if r.GetApplied() > ac.applied {
				ac.applied = r.GetApplied()
				ac.conns = r.GetConnections()
				close(ac.changed)
				ac.changed = make(chan struct{})
			}
			ac.mu.Unlock()
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

// Connect implements teleproto.AgentServiceServer.
func (a *agentServer) Connect(stream teleproto.AgentService_ConnectServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	open := first.GetOpen()
	if open == nil || open.GetInterceptId() == "" {
		return status.Error(codes.InvalidArgument, "the first message must be an Open naming the intercept")
	}
	client := ""
	if ip, ok := netipFromSlice(open.GetSrcIp()); ok {
		client = fmt.Sprintf("%s:%d", ip, open.GetSrcPort())
	}
	return a.s.connectToLaptop(stream, open.GetInterceptId(), client)
}

// pushRoutes sends each pod's agent its routes and, with a timeout, waits
// until they are applied. It returns the pods' names.
func (s *Server) pushRoutes(ctx context.Context, pods []*corev1.Pod, timeout time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var names []string
	for _, p := range pods {
		ac, err := s.waitAgent(ctx, p.Name, "")
		if err != nil {
			return nil, err
		}
		v := s.sendRoutes(ac, s.routesFor(p, ac.hello), true)
		if err := ac.waitApplied(ctx, v); err != nil {
			return nil, status.Errorf(codes.DeadlineExceeded, "agent in pod %s did not apply its routes: %v", p.Name, err)
		}
		names = append(names, p.Name)
	}
	return names, nil
}

// bypassing sums, over the agents of pods, what they reported of port when
// they last applied routes: the connections that do not pass the redirect
// (opened before it) and those reset.
func (s *Server) bypassing(pods []string, port uint32) (open, reset uint32) {
	s.amu.Lock()
	defer s.amu.Unlock()
	for _, name := range pods {
		ac := s.agents[name]
		if ac == nil {
			continue
		}
		ac.mu.Lock()
		for _, c := range ac.conns {
			if c.GetPort() == port {
				open += c.GetBypassing()
				reset += c.GetResetConnections()
			}
		}
		ac.mu.Unlock()
	}
	return open, reset
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

func (s *Server) agent(pod string) *agentConn {
	s.amu.Lock()
	defer s.amu.Unlock()
	return s.agents[pod]
}

// waitAgent waits for the agent of pod to connect. With container set (an
// agent just added), it also looks at the container's status once a second,
// so an image that cannot be pulled fails at once, not at the deadline.
func (s *Server) waitAgent(ctx context.Context, pod, container string) (*agentConn, error) {
	if container == "" {
		container = agentContainer
	}
	next := time.Now().Add(time.Second)
	for {
		if ac := s.agent(pod); ac != nil {
			return ac, nil
		}
		if time.Now().After(next) {
			next = time.Now().Add(time.Second)
			if p, err := s.cfg.Client.CoreV1().Pods(s.cfg.Namespace).Get(ctx, pod, metav1.GetOptions{}); err == nil {
				if msg := agentPullFailure(p, container, s.cfg.ImagePullSecrets); msg != "" {
					return nil, status.Error(codes.FailedPrecondition, msg)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, status.Errorf(codes.DeadlineExceeded, "the agent in pod %s did not connect to the manager (kubectl logs -n %s %s -c %s)", pod, s.cfg.Namespace, pod, container)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Waiting reasons of a container whose image will not arrive by waiting.
var pullFailures = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true}

// agentPullFailure says why the agent container of p cannot start for want
// of its image, and what to do; "" if it is not so.
func agentPullFailure(p *corev1.Pod, container string, secrets []string) string {
	for _, st := range p.Status.EphemeralContainerStatuses {
		if st.Name != container || st.State.Waiting == nil || !pullFailures[st.State.Waiting.Reason] {
			continue
		}
		w := st.State.Waiting
		return fmt.Sprintf("the agent in pod %s/%s cannot pull image %s (%s: %s). An ephemeral container pulls with its pod's imagePullSecrets (%s)%s; "+
			"no traffic was redirected, and the idle container stays in the pod (ephemeral containers cannot be removed)",
			p.Namespace, p.Name, st.Image, w.Reason, strings.TrimSpace(w.Message), secretNames(p), pullAdvice(secrets))
	}
	return ""
}

// missingPullSecrets returns those of secrets that p cannot use: its agent
// could not pull the image they open.
func missingPullSecrets(p *corev1.Pod, secrets []string) []string {
	have := map[string]bool{}
	for _, r := range p.Spec.ImagePullSecrets {
		have[r.Name] = true
	}
	var missing []string
	for _, n := range secrets {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	return missing
}

func secretNames(p *corev1.Pod) string {
	var names []string
	for _, r := range p.Spec.ImagePullSecrets {
		names = append(names, r.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// pullAdvice tells how to give a workload's pods what the agent pulls with.
func pullAdvice(secrets []string) string {
	if len(secrets) == 0 {
		return ": make the image pullable by the node, or connect with --image-pull-secret NAME and give the workload that Secret"
	}
	return fmt.Sprintf(": add %s to the workload's spec.template.spec.imagePullSecrets (or to its ServiceAccount's imagePullSecrets); its pods then restart with it", strings.Join(secrets, ", "))
}

// attachAgent makes sure pod has a running agent, adding one as an
// ephemeral container as kubectl debug does: with NET_ADMIN for the nftables
// redirect, or, where Pod Security forbids that or mech asks, with no
// capability (the Service mechanism). It returns the mechanism the pod's
// agent supports. newPod tells the agent that its pod has just started (see
// the agent's --new-pod).
func (s *Server) attachAgent(ctx context.Context, pod *corev1.Pod, mech string, newPod bool) (string, error) {
	if ac := s.agent(pod.Name); ac != nil {
		return mechOf(ac.hello, mech), nil
	}
	if live := liveAgent(pod); live != "" {
		// Its agent connects within seconds (to a new manager, or, just
		// added, once it has started); but the pod's status may also be
		// stale (an agent just killed): then give up here, and the next
		// reconcile sees it terminated and adds another.
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		ac, err := s.waitAgent(wctx, pod.Name, live)
		cancel()
		if err == nil {
			return mechOf(ac.hello, mech), nil
		}
		fresh, gerr := s.cfg.Client.CoreV1().Pods(s.cfg.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if gerr != nil || liveAgent(fresh) != "" {
			return "", err
		}
		pod = fresh
	}
	if missing := missingPullSecrets(pod, s.cfg.ImagePullSecrets); len(missing) > 0 {
		return "", status.Errorf(codes.FailedPrecondition, "the agent cannot be added to pod %s/%s: the image %s needs the pull Secret %s, and the pod's imagePullSecrets (%s) lack it, so its agent could not pull the image%s; nothing was changed",
			s.cfg.Namespace, pod.Name, s.cfg.Image, strings.Join(missing, ", "), secretNames(pod), pullAdvice(missing))
	}
	pods := s.cfg.Client.CoreV1().Pods(s.cfg.Namespace)
	name := agentName(pod)
	withCaps := mech != mechService
	for {
		fresh, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return "", status.Errorf(codes.Unavailable, "get pod %s: %v", pod.Name, err)
		}
		if live := liveAgent(fresh); live != "" {
			name = live // another attach (the controller's, CreateIntercept's) was first
			break
		}
		fresh.Spec.EphemeralContainers = append(fresh.Spec.EphemeralContainers, s.agentSpec(name, withCaps, newPod))
		_, err = pods.UpdateEphemeralContainers(ctx, pod.Name, fresh, metav1.UpdateOptions{})
		switch {
		case err == nil:
		case apierrors.IsConflict(err):
			continue
		case withCaps && (apierrors.IsForbidden(err) || apierrors.IsInvalid(err)) && strings.Contains(err.Error(), "PodSecurity"):
			s.log.Info("Pod Security forbids NET_ADMIN: using the Service mechanism", "pod", pod.Name, "err", err)
			withCaps = false
			continue
		case apierrors.IsNotFound(err):
			// An API server without the subresource answers 404 too
			// ("the server could not find the requested resource"),
			// as it does for a pod that is gone: the pod tells which.
			if _, gerr := pods.Get(ctx, pod.Name, metav1.GetOptions{}); gerr == nil {
				return "", status.Errorf(codes.Unimplemented, "this API server does not support ephemeral containers (adding one to pod %s/%s: %v): kubectl tele intercept needs Kubernetes 1.25 or later", s.cfg.Namespace, pod.Name, err)
			}
			return "", status.Errorf(codes.Unavailable, "pod %s/%s went away while its agent was being added: %v", s.cfg.Namespace, pod.Name, err)
		default:
			return "", status.Errorf(codes.Unavailable, "add the agent to pod %s/%s: %v", s.cfg.Namespace, pod.Name, err)
		}
		break
	}
	s.log.Info("agent attached", "pod", pod.Name, "container", name, "netAdmin", withCaps, "newPod", newPod)
	ac, err := s.waitAgent(ctx, pod.Name, name)
	if err != nil {
		return "", err
	}
	return mechOf(ac.hello, mech), nil
}

func mechOf(h *teleproto.AgentHello, want string) string {
	if want != "" {
		return want
	}
	if h.GetCanRedirect() {
		return mechNftables
	}
	return mechService
}

// liveAgent returns the name of p's agent container that runs, or has been
// added and not yet started (no status, or waiting for its image), "" if
// none: a second one would fight it for the agent ports.
func liveAgent(p *corev1.Pod) string {
	st := map[string]*corev1.ContainerStatus{}
	for i := range p.Status.EphemeralContainerStatuses {
		st[p.Status.EphemeralContainerStatuses[i].Name] = &p.Status.EphemeralContainerStatuses[i]
	}
	for _, c := range p.Spec.EphemeralContainers {
		if !strings.HasPrefix(c.Name, agentContainer) {
			continue
		}
		cs := st[c.Name]
		if cs == nil || cs.State.Running != nil || (cs.State.Waiting != nil && !pullFailures[cs.State.Waiting.Reason]) {
			return c.Name
		}
	}
	return ""
}

// agentName is unique in the pod: ephemeral containers cannot be removed,
// so a pod whose earlier agent ended gets tele-agent-2, -3, ...
func agentName(p *corev1.Pod) string {
	used := map[string]bool{}
	for _, c := range p.Spec.EphemeralContainers {
		used[c.Name] = true
	}
	name := agentContainer
	for i := 2; used[name]; i++ {
		name = fmt.Sprintf("%s-%d", agentContainer, i)
	}
	return name
}

func (s *Server) agentSpec(name string, netAdmin, newPod bool) corev1.EphemeralContainer {
	sc := &corev1.SecurityContext{
		AllowPrivilegeEscalation: new(false),
		ReadOnlyRootFilesystem:   new(true),
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if netAdmin {
		// nftables needs CAP_NET_ADMIN, which only root's process gets from
		// the runtime; it has nothing else.
		sc.RunAsUser = new(int64(0))
		sc.RunAsNonRoot = new(false)
		sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_ADMIN"}}
	} else {
		// Passes the "restricted" Pod Security level.
		sc.RunAsUser = new(int64(65532))
		sc.RunAsNonRoot = new(true)
		sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
	}
	return corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name:            name,
		Image:           s.cfg.Image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Args:            agentArgs(s.agentAddr, newPod),
		Env: []corev1.EnvVar{
			// From the Secret, so the token is not in the pod's spec.
			{Name: "TELE_AGENT_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: AgentSecret}, Key: agentTokenKey}}},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		},
		SecurityContext:          sc,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}}
}

func agentArgs(managerAddr string, newPod bool) []string {
	args := []string{"agent", "--manager=" + managerAddr}
	if newPod {
		args = append(args, "--new-pod")
	}
	return args
}

// setupAgents makes the token Secret and the Service agents reach the
// manager through (both kept across manager restarts, so agents of an
// earlier manager find the next one).
func (s *Server) setupAgents(ctx context.Context, podLabels map[string]string) error {
	secrets := s.cfg.Client.CoreV1().Secrets(s.cfg.Namespace)
	sec, err := secrets.Get(ctx, AgentSecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		sec, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: AgentSecret, Labels: map[string]string{"app.kubernetes.io/managed-by": "kubectl-tele"}},
			Data:       map[string][]byte{agentTokenKey: []byte(rand.Text())},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			sec, err = secrets.Get(ctx, AgentSecret, metav1.GetOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("agent token secret %s/%s: %w", s.cfg.Namespace, AgentSecret, err)
	}
	s.agentToken = string(sec.Data[agentTokenKey])
	svcs := s.cfg.Client.CoreV1().Services(s.cfg.Namespace)
	svc, err := svcs.Get(ctx, AgentService, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		svc, err = svcs.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: AgentService, Labels: map[string]string{"app.kubernetes.io/managed-by": "kubectl-tele"}},
			Spec: corev1.ServiceSpec{
				Selector: podLabels,
				Ports:    []corev1.ServicePort{{Name: "agents", Port: int32(DefaultAgentPort), TargetPort: intstr.FromInt32(int32(DefaultAgentPort))}},
			},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			svc, err = svcs.Get(ctx, AgentService, metav1.GetOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("agent service %s/%s: %w", s.cfg.Namespace, AgentService, err)
	}
	s.agentAddr = fmt.Sprintf("%s:%d", svc.Spec.ClusterIP, DefaultAgentPort)
	return nil
}

// mechFor returns the mechanism of the intercepts that select pod, "" if
// none does (or none has been attached yet: CreateIntercept attaches its
// first pods itself).
func (s *Server) mechFor(pod *corev1.Pod) string {
	s.imu.Lock()
	defer s.imu.Unlock()
	for _, ic := range s.intercepts {
		if ic.mech != "" && !ic.removing && selects(ic.selector, pod) {
			return ic.mech
		}
	}
	return ""
}

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

// ownLabels returns the selector for the manager's pod: its
// app.kubernetes.io/name label.
func (s *Server) ownLabels(ctx context.Context) map[string]string {
	const key = "app.kubernetes.io/name"
	if p, err := s.cfg.Client.CoreV1().Pods(s.cfg.Namespace).Get(ctx, s.cfg.PodName, metav1.GetOptions{}); err == nil && p.Labels[key] != "" {
		return map[string]string{key: p.Labels[key]}
	}
	return map[string]string{key: "kubectl-tele-manager"}
}
