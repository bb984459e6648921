package manager

// Attaching an agent to a pod: adopting one already there, adding one as
// an ephemeral container (its spec and arguments), waiting for it to
// register, and the advice when its image cannot be pulled.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// errAgentEnded is waitAgent's answer when the container it waits for is
// no longer running: it will never register.
var errAgentEnded = errors.New("the agent container ended")

// takeoverTimeout bounds how long an agent may wait for an earlier agent of
// its pod to exit: an earlier agent that this manager refuses exits within
// seconds of reaching it, and one that cannot reach it never does.
const takeoverTimeout = 30 * time.Second

// waitAgent waits for the agent of pod to connect: with container "", any
// agent; otherwise that container. Then it also looks at the pod in the
// informer's cache at each of its changes, so that an image that cannot be
// pulled fails at once, a container that ended returns errAgentEnded, and
// one that has waited takeoverTimeout for an earlier agent of its pod to
// exit fails, saying so. It wakes on events only (s.changes): an agent's
// registration, a change of the pod.
func (s *Server) waitAgent(ctx context.Context, pod, container string) (*agentConn, error) {
	var older []string // agents running beside container, as last seen
	var takeover *time.Timer
	var takeoverC <-chan time.Time
	defer func() {
		if takeover != nil {
			takeover.Stop()
		}
	}()
	for {
		changed := s.changes.wait()
		if ac := s.agent(pod); ac != nil && (container == "" || ac.hello.GetContainer() == container) {
			return ac, nil
		}
		if container != "" {
			if p, err := s.pod(ctx, pod); err == nil {
				if msg := agentPullFailure(p, container, s.cfg.ImagePullSecrets); msg != "" {
					return nil, status.Error(codes.FailedPrecondition, msg)
				}
				st := agentStatus(p, container)
				if st != nil && st.State.Terminated != nil {
					t := st.State.Terminated
					return nil, fmt.Errorf("agent %s in pod %s/%s: %w (%s, exit code %d: %s)", container, s.cfg.Namespace, pod, errAgentEnded, t.Reason, t.ExitCode, strings.TrimSpace(t.Message))
				}
				older = slices.DeleteFunc(runningAgents(p), func(n string) bool { return n == container })
				switch {
				case st == nil || st.State.Running == nil || len(older) == 0:
					if takeover != nil {
						takeover.Stop()
						takeover, takeoverC = nil, nil
					}
				case takeover == nil:
					takeover = time.NewTimer(takeoverTimeout)
					takeoverC = takeover.C
				}
			}
		}
		select {
		case <-ctx.Done():
			hint := container
			if hint == "" {
				hint = s.hintAgent(ctx, pod)
			}
			msg := fmt.Sprintf("the agent in pod %s did not connect to the manager (kubectl logs -n %s %s -c %s)", pod, s.cfg.Namespace, pod, hint)
			if len(older) > 0 {
				msg += fmt.Sprintf("; it waits for the earlier agent %s to exit", strings.Join(older, ", "))
			}
			return nil, status.Error(codes.DeadlineExceeded, msg)
		case <-takeoverC:
			return nil, status.Errorf(codes.FailedPrecondition, "the agent %s in pod %s/%s waits for the earlier agent %s to exit, and after %v it has not: "+
				"it cannot reach this manager (or it is older than this manager and does not exit when refused); "+
				"deleting the pod replaces both (kubectl delete pod -n %s %s)",
				container, s.cfg.Namespace, pod, strings.Join(older, ", "), takeoverTimeout, s.cfg.Namespace, pod)
		case <-changed:
		}
	}
}

// hintAgent names the container of pod's newest agent, for a hint once ctx
// has ended; agentContainer if it cannot tell.
func (s *Server) hintAgent(ctx context.Context, pod string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if p, err := s.pod(ctx, pod); err == nil {
		if c := newestAgent(p); c != nil {
			return c.Name
		}
	}
	return agentContainer
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
// the agent's --new-pod). Only the controller calls it (controller.attach),
// one attach per pod at a time; the pod is read from the informer's cache,
// and the patch's resourceVersion precondition refuses a stale one.
func (s *Server) attachAgent(ctx context.Context, pod *corev1.Pod, mech teleproto.Mechanism, newPod bool) (teleproto.Mechanism, error) {
	if ac := s.agent(pod.Name); ac != nil {
		return mechOf(ac.hello, mech), nil
	}
	pod, ac, err := s.adoptAgent(ctx, pod)
	if err != nil {
		return mechNone, err
	}
	if ac != nil {
		return mechOf(ac.hello, mech), nil
	}
	if missing := missingPullSecrets(pod, s.cfg.ImagePullSecrets); len(missing) > 0 {
		return mechNone, status.Errorf(codes.FailedPrecondition, "the agent cannot be added to pod %s/%s: the image %s needs the pull Secret %s, and the pod's imagePullSecrets (%s) lack it, so its agent could not pull the image%s; nothing was changed",
			s.cfg.Namespace, pod.Name, s.cfg.Image, strings.Join(missing, ", "), secretNames(pod), pullAdvice(missing))
	}
	pods := s.cfg.Client.CoreV1().Pods(s.cfg.Namespace)
	// seen is the agent adoptAgent judged (ended, stale, or silent): one
	// newer than it, added meanwhile, is another attach's.
	seen := newestAgent(pod)
	var name string
	addr := s.agentAddress(pod)
	withCaps := mech != mechService
	fresh, err := s.pod(ctx, pod.Name)
	for {
		if err != nil {
			return mechNone, status.Errorf(codes.Unavailable, "get pod %s/%s: %v", s.cfg.Namespace, pod.Name, err)
		}
		if n := newestAgent(fresh); n != nil && (seen == nil || n.Name != seen.Name) && agentLive(agentStatus(fresh, n.Name)) {
			name = n.Name // another attach (an earlier sync's) was first
			break
		}
		name = agentName(fresh)
		err = addEphemeralContainer(ctx, pods, fresh, s.agentSpec(name, withCaps, newPod, addr))
		switch {
		case err == nil:
		case apierrors.IsConflict(err):
			// The cache was behind: its next event for the pod has what
			// the patch conflicted with.
			fresh, err = s.podNewerThan(ctx, pod.Name, fresh.ResourceVersion)
			continue
		case withCaps && (apierrors.IsForbidden(err) || apierrors.IsInvalid(err)) && strings.Contains(err.Error(), "PodSecurity"):
			// Pod Security admission's Status carries no cause or detail
			// that names it; its message is the only mark it leaves.
			s.log.Info("Pod Security forbids NET_ADMIN: using the Service mechanism", "pod", pod.Name, "err", err)
			withCaps = false
			err = nil
			continue
		case noEphemeralContainers(err):
			return mechNone, status.Errorf(codes.Unimplemented, "this API server does not support ephemeral containers (adding one to pod %s/%s: %v): kubectl tele intercept needs Kubernetes 1.25 or later", s.cfg.Namespace, pod.Name, err)
		case apierrors.IsNotFound(err):
			return mechNone, status.Errorf(codes.Unavailable, "pod %s/%s went away while its agent was being added: %v", s.cfg.Namespace, pod.Name, err)
		default:
			return mechNone, status.Errorf(codes.Unavailable, "add the agent to pod %s/%s: %v", s.cfg.Namespace, pod.Name, err)
		}
		break
	}
	s.log.Info("agent attached", "pod", pod.Name, "container", name, "netAdmin", withCaps, "newPod", newPod, "manager", addr)
	// An earlier agent that registered meanwhile gives way: cut off, it
	// comes back, is refused as superseded, and exits.
	s.dropAgent(pod.Name, name)
	ac, err = s.waitAgent(ctx, pod.Name, name)
	if errors.Is(err, errAgentEnded) {
		return mechNone, status.Errorf(codes.Unavailable, "%v (kubectl logs -n %s %s -c %s)", err, s.cfg.Namespace, pod.Name, name)
	}
	if err != nil {
		return mechNone, err
	}
	return mechOf(ac.hello, mech), nil
}

// adoptAgent returns the pod's running agent once it registers, when it can
// serve this manager; otherwise no agent, and the pod as it now is, to add
// one to. A pod's newest agent that is live but has not registered is
//   - starting, added by an earlier attach (of this manager, or of one
//     that restarted): waited for, as if added here.
//   - stale: given the ClusterIP of an earlier Service, which it retries
//     forever, or holding the token of an earlier install, which this
//     manager refuses (it then exits). It never registers: a new agent is
//     added at once, and takes over when the stale one has exited.
//   - waiting itself for an earlier agent to exit: waited for, up to
//     takeoverTimeout; another agent would only queue behind the same one.
//   - otherwise, an agent of this install that registers within seconds of
//     a new manager (the manager pod restarted, or idled): waited for up to
//     15 s. If it has not registered by then, or it ended, a new agent is
//     added, which takes over from it.
func (s *Server) adoptAgent(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, *agentConn, error) {
	c := newestAgent(pod)
	if c == nil {
		return pod, nil, nil
	}
	st := agentStatus(pod, c.Name)
	if !agentLive(st) {
		return pod, nil, nil
	}
	if why := staleAgent(c, s.agentIP, s.tokenID, s.caPEM()); why != "" {
		s.log.Info("adding an agent to take over from one that cannot serve this manager", "pod", pod.Name, "container", c.Name, "why", why)
		return pod, nil, nil
	}
	if st == nil || st.State.Running == nil {
		// Added by another attach of this manager (an earlier
		// sync's) and starting: waited for as if added here.
		ac, err := s.waitAgent(ctx, pod.Name, c.Name)
		if !errors.Is(err, errAgentEnded) {
			return pod, ac, err
		}
	} else {
		queued := len(runningAgents(pod)) > 1
		wait := 15 * time.Second
		if queued {
			// waitAgent gives up first, saying why.
			wait = takeoverTimeout + 5*time.Second
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		ac, err := s.waitAgent(wctx, pod.Name, c.Name)
		cancel()
		switch {
		case err == nil:
			return pod, ac, nil
		case ctx.Err() != nil, queued:
			return nil, nil, err
		case errors.Is(err, errAgentEnded), status.Code(err) == codes.DeadlineExceeded:
			s.log.Warn("the pod's agent did not register: adding one to take over from it", "pod", pod.Name, "container", c.Name, "err", err)
		default:
			return nil, nil, err
		}
	}
	fresh, err := s.pod(ctx, pod.Name)
	if err != nil {
		return nil, nil, status.Errorf(codes.Unavailable, "get pod %s/%s: %v", s.cfg.Namespace, pod.Name, err)
	}
	return fresh, nil, nil
}

func mechOf(h *teleproto.AgentHello, want teleproto.Mechanism) teleproto.Mechanism {
	if want != mechNone {
		return want
	}
	if h.GetCanRedirect() {
		return mechNftables
	}
	return mechService
}

// newestAgent returns the agent container added to p last, nil if none:
// ephemeral containers are only ever appended to the spec.
func newestAgent(p *corev1.Pod) *corev1.EphemeralContainer {
	for i := len(p.Spec.EphemeralContainers) - 1; i >= 0; i-- {
		if c := &p.Spec.EphemeralContainers[i]; isAgent(c.Name) {
			return c
		}
	}
	return nil
}

func isAgent(container string) bool {
	return container == agentContainer || strings.HasPrefix(container, agentContainer+"-")
}

// agentLive tells whether an agent container of this status runs, or has
// been added and not yet started (no status, or waiting, not for an image
// it cannot pull): a second one would only wait for it.
func agentLive(st *corev1.ContainerStatus) bool {
	return st == nil || st.State.Running != nil || (st.State.Waiting != nil && !pullFailures[st.State.Waiting.Reason])
}

// agentStatus returns the status of p's container, nil if it has none yet.
func agentStatus(p *corev1.Pod, container string) *corev1.ContainerStatus {
	for i := range p.Status.EphemeralContainerStatuses {
		if st := &p.Status.EphemeralContainerStatuses[i]; st.Name == container {
			return st
		}
	}
	return nil
}

// runningAgents names p's running agent containers, in the order they
// were added.
func runningAgents(p *corev1.Pod) []string {
	var out []string
	for _, c := range p.Spec.EphemeralContainers {
		if st := agentStatus(p, c.Name); isAgent(c.Name) && st != nil && st.State.Running != nil {
			out = append(out, c.Name)
		}
	}
	return out
}

// staleAgent says why the agent container c can never serve the manager
// whose Service has the ClusterIP address ip, whose token's Secret has
// the UID tokenID and whose CA's certificate is caPEM; "" if it may. An
// address given by name finds whichever manager runs; the token's ID and
// the CA are in every agent's spec (agentSpec).
func staleAgent(c *corev1.EphemeralContainer, ip, tokenID, caPEM string) string {
	if addr := flagValue(c.Args, "--manager"); addr != "" && addr != ip {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			if _, err := netip.ParseAddr(host); err == nil {
				return fmt.Sprintf("it was given %s, the address of an earlier manager's Service (this one's is %s)", addr, ip)
			}
		}
	}
	switch {
	case envValue(c, tokenIDEnv) != tokenID:
		return "it holds the token of an earlier install (kubectl tele uninstall deleted it), which this manager refuses"
	case envValue(c, caEnv) != caPEM:
		return "it trusts the CA of an earlier install (kubectl tele uninstall deleted it), and refuses this manager"
	}
	return ""
}

// envValue is the value c's spec gives the environment variable name.
func envValue(c *corev1.EphemeralContainer, name string) string {
	if i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name }); i >= 0 {
		return c.Env[i].Value
	}
	return ""
}

// flagValue returns the value of --name=VALUE in args.
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
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

// tokenIDEnv, in an agent's spec, holds the UID of the token's Secret when
// the agent was added. The agent does not read it: it tells the manager
// which install's token the agent got (through secretKeyRef, at start).
const tokenIDEnv = "TELE_AGENT_TOKEN_ID"

func (s *Server) agentSpec(name string, netAdmin, newPod bool, addr string) corev1.EphemeralContainer {
	sc := &corev1.SecurityContext{
		AllowPrivilegeEscalation: new(false),
		ReadOnlyRootFilesystem:   new(true),
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if netAdmin {
		// nftables needs CAP_NET_ADMIN, which only root's process gets from
		// the runtime; it has nothing else. An app running as root too,
		// in a pod that shares its process namespace, still cannot read
		// the agent's token: the agent is non-dumpable (internal/nodump).
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
		Args:            agentArgs(addr, name, newPod),
		Env: []corev1.EnvVar{
			// From the Secret, so the token is not in the pod's spec.
			{Name: "TELE_AGENT_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: objects.AgentSecret}, Key: agentTokenKey}}},
			{Name: tokenIDEnv, Value: s.tokenID},
			// Public: what the agent verifies the manager's certificate with.
			{Name: caEnv, Value: s.caPEM()},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		},
		SecurityContext:          sc,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}}
}

// caPEM is the certificate of the agents' CA, "" before setupAgents.
func (s *Server) caPEM() string {
	if s.agentCA == nil {
		return ""
	}
	return string(s.agentCA.pem)
}

// agentArgs are an agent's arguments. Its own name goes in its hello, so
// the manager tells a pod's agents apart.
func agentArgs(managerAddr, container string, newPod bool) []string {
	args := []string{"agent", "--manager=" + managerAddr, "--container=" + container}
	if newPod {
		args = append(args, "--new-pod")
	}
	return args
}

// mechFor returns the mechanism pod's agent is to be added with, mechNone
// if it needs none (see state.Table.MechFor).
func (s *Server) mechFor(pod *corev1.Pod) teleproto.Mechanism {
	s.imu.Lock()
	defer s.imu.Unlock()
	return s.table.MechFor(pod)
}
