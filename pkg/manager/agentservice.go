package manager

// What the agents reach the manager through: the token Secret, the
// Service, and the address an agent is given.

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/discovery"
	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// Agent plumbing: names of what the manager keeps in its namespace for the
// agents, and the metadata key of their token.
const (
	AgentService   = teleproto.AgentServiceName
	agentTokenKey  = "token"
	agentContainer = "tele-agent"
)

// resolvesClusterNames tells whether a pod's resolver knows cluster names:
// with dnsPolicy ClusterFirst (the default), unless it uses the host's
// network, where ClusterFirst falls back to Default; and with
// ClusterFirstWithHostNet. Default is the node's resolver, and None only
// the pod's own dnsConfig: neither need know cluster names.
func resolvesClusterNames(spec *corev1.PodSpec) bool {
	switch spec.DNSPolicy {
	case corev1.DNSClusterFirstWithHostNet:
		return true
	case corev1.DNSClusterFirst, "":
		return !spec.HostNetwork
	}
	return false
}

// agentAddress is where an agent in p is to reach the manager: the Service's
// DNS name where the pod resolves it, because the agent resolves it again
// on every dial and so finds whichever manager runs (after uninstall and
// connect the Service has another ClusterIP); elsewhere the ClusterIP,
// which lasts as long as the Service: across manager restarts and idle
// exits, not across uninstall.
func (s *Server) agentAddress(p *corev1.Pod) string {
	if resolvesClusterNames(&p.Spec) {
		return s.agentHost
	}
	return s.agentIP
}

// setupAgents makes the token Secret, the CA of the agents' link (see
// agentca.go) and the Service agents reach the manager through (all kept
// across manager restarts, so agents of an earlier manager find the next
// one).
//
// Each is read, and created only if absent, rather than server-side
// applied: the first one made must win (the token and CA that running
// agents hold, the ClusterIP they were given), where an apply would
// replace another manager's, and apply would need patch on secrets and
// services, which the manager's Role does not grant.
//
// These are the manager's only cluster writes outside its controller: a
// one-time setup in Run, before the controller and the gRPC servers start,
// of what must exist for any agent to connect (the controller's attaches
// put the token's Secret and the CA in each agent's spec). They create what
// is absent and never change an existing object, so they cannot race the
// controller. (The reviews in authn.go, and discovery's dry-run, Create
// nothing that is kept: they are questions to the API server.)
func (s *Server) setupAgents(ctx context.Context, podLabels map[string]string) error {
	secrets := s.cfg.Client.CoreV1().Secrets(s.cfg.Namespace)
	sec, err := secrets.Get(ctx, objects.AgentSecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		sec, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: objects.AgentSecret, Labels: map[string]string{"app.kubernetes.io/managed-by": "kubectl-tele"}},
			Data:       map[string][]byte{agentTokenKey: []byte(rand.Text())},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			sec, err = secrets.Get(ctx, objects.AgentSecret, metav1.GetOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("agent token secret %s/%s: %w", s.cfg.Namespace, objects.AgentSecret, err)
	}
	s.agentToken = string(sec.Data[agentTokenKey])
	s.tokenID = string(sec.UID)
	svcs := s.cfg.Client.CoreV1().Services(s.cfg.Namespace)
	svc, err := svcs.Get(ctx, AgentService, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		want := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: AgentService, Labels: map[string]string{"app.kubernetes.io/managed-by": "kubectl-tele"}},
			Spec: corev1.ServiceSpec{
				Selector: podLabels,
				Ports:    []corev1.ServicePort{{Name: "agents", Port: int32(DefaultAgentPort), TargetPort: intstr.FromInt32(int32(DefaultAgentPort))}},
			},
		}
		// Agents given the ClusterIP of an earlier Service (in pods that
		// cannot resolve its name) retry it forever: with it again, they
		// reach this manager, which refuses the earlier install's token, so
		// they exit and fresh agents take over.
		if ip := s.earlierAgentIP(ctx); ip != "" {
			want.Spec.ClusterIP = ip
			svc, err = svcs.Create(ctx, want, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				s.log.Info("the earlier agents' ClusterIP is not to be had: they stay until their pods restart", "ip", ip, "err", err)
				want.Spec.ClusterIP = ""
			}
		}
		if want.Spec.ClusterIP == "" {
			svc, err = svcs.Create(ctx, want, metav1.CreateOptions{})
		}
		if apierrors.IsAlreadyExists(err) {
			svc, err = svcs.Get(ctx, AgentService, metav1.GetOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("agent service %s/%s: %w", s.cfg.Namespace, AgentService, err)
	}
	port := strconv.Itoa(DefaultAgentPort)
	s.agentIP = net.JoinHostPort(svc.Spec.ClusterIP, port)
	s.agentHost = net.JoinHostPort(agentServiceHost(s.cfg.Namespace, s.resolver.Search), port)
	domain, _ := discovery.ClusterDomainFromSearch(s.resolver.Search, s.cfg.Namespace)
	if s.agentCA, err = s.loadAgentCA(ctx, agentServerNames(s.cfg.Namespace, domain)); err != nil {
		return err
	}
	return nil
}

// earlierAgentIP returns the ClusterIP that most of the running agents in
// the namespace were given, "" if none was given one: agents given the name
// find any Service of that name.
func (s *Server) earlierAgentIP(ctx context.Context) string {
	pods, err := s.cfg.Client.CoreV1().Pods(s.cfg.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		s.log.Info("list pods for their agents' manager address", "err", err)
		return ""
	}
	count := map[string]int{}
	for i := range pods.Items {
		p := &pods.Items[i]
		for _, c := range p.Spec.EphemeralContainers {
			if !slices.Contains(runningAgents(p), c.Name) {
				continue
			}
			if host, _, err := net.SplitHostPort(flagValue(c.Args, "--manager")); err == nil {
				if ip, err := netip.ParseAddr(host); err == nil {
					count[ip.String()]++
				}
			}
		}
	}
	best := ""
	for ip, n := range count {
		if best == "" || n > count[best] || n == count[best] && ip < best {
			best = ip
		}
	}
	return best
}

// agentServiceHost is the DNS name of the agents' Service in namespace ns,
// for a pod whose resolver has the manager's search list: absolute in the
// cluster domain that list shows, so that it is asked alone and not after
// each search domain; else relative, "NAME.NS.svc", which the pod's search
// list completes with its cluster domain.
func agentServiceHost(ns string, search []string) string {
	host := AgentService + "." + ns + ".svc"
	if d, ok := discovery.ClusterDomainFromSearch(search, ns); ok {
		host += "." + d + "."
	}
	return host
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
