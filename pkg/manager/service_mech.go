package manager

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-tele/kubectl-tele/pkg/kubewait"
)

// AnnotOriginalTargetPort (+ the port name) records a retargeted Service port's original targetPort,
// so that it can be restored also by a later manager.
const AnnotOriginalTargetPort = "kubectl-tele.io/original-target-port-"

// retargetServices is the no-capability mechanism: the Services that lead to
// the intercepted port are pointed at the agents' port (every pod of the
// workload has an agent, which passes what it does not route on to the app).
func (s *Server) retargetServices(ctx context.Context, ic *intercept, only []string) error {
	pods, err := s.runningPods(ctx, ic.selector)
	if err != nil || len(pods) == 0 {
		return status.Errorf(codes.FailedPrecondition, "no running pod to find the Services of")
	}
	pod := pods[0]
	svcs, err := s.cfg.Client.CoreV1().Services(s.cfg.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return status.Errorf(codes.Unavailable, "list services: %v", err)
	}
	n := 0
	for _, svc := range svcs.Items {
		if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			continue
		}
		if len(only) > 0 && !contains(only, svc.Name) {
			continue
		}
		changed := false
		for i, p := range svc.Spec.Ports {
			if p.Protocol != corev1.ProtocolTCP || !targets(pod, p.TargetPort, p.Port, int32(ic.pb.Port)) {
				continue
			}
			if svc.Annotations == nil {
				svc.Annotations = map[string]string{}
			}
			key := AnnotOriginalTargetPort + portKey(p)
			if _, done := svc.Annotations[key]; !done {
				svc.Annotations[key] = p.TargetPort.String()
			}
			svc.Spec.Ports[i].TargetPort = intstr.FromInt32(int32(AgentPort(ic.pb.Port)))
			changed = true
		}
		if !changed {
			continue
		}
		if _, err := s.cfg.Client.CoreV1().Services(s.cfg.Namespace).Update(ctx, &svc, metav1.UpdateOptions{}); err != nil {
			return status.Errorf(codes.Unavailable, "point Service %s at the agents: %v", svc.Name, err)
		}
		ic.services = append(ic.services, svc.Name)
		n++
		s.log.Info("service retargeted to the agents", "svc", svc.Name, "intercept", ic.pb.Name)
	}
	if n == 0 {
		return status.Errorf(codes.FailedPrecondition, "Pod Security forbids the agent's NET_ADMIN here, and no Service leads to port %d of %s/%s, which the capability-free mechanism needs", ic.pb.Port, ic.pb.WorkloadKind, ic.pb.WorkloadName)
	}
	for _, name := range ic.services {
		s.awaitEndpointSlices(ctx, name, int32(AgentPort(ic.pb.Port)))
	}
	return nil
}

// awaitEndpointSlices waits, for at most 10 s, until every EndpointSlice of
// Service name lists port, so that intercept does not report success before
// the control plane has taken up the new targetPort. kube-proxy then applies
// it on its next sync (about a second at most); that last step leaves no
// trace in the API to wait for.
func (s *Server) awaitEndpointSlices(ctx context.Context, name string, port int32) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	slices := s.cfg.Client.DiscoveryV1().EndpointSlices(s.cfg.Namespace)
	sel := discoveryv1.LabelServiceName + "=" + name
	lw := kubewait.ListWatch(slices.List, slices.Watch, func(o *metav1.ListOptions) { o.LabelSelector = sel })
	// All slices must show the port: the condition looks at the whole store
	// (the informer's view of the Service's slices), not at one event.
	var store cache.Store
	allShow := func() bool {
		items := store.List()
		for _, obj := range items {
			if !hasPort(obj.(*discoveryv1.EndpointSlice).Ports, port) {
				return false
			}
		}
		return len(items) > 0
	}
	err := kubewait.Until(ctx, lw, s.cfg.Client, &discoveryv1.EndpointSlice{},
		func(st cache.Store) (bool, error) { store = st; return allShow(), nil },
		func(watch.Event) (bool, error) { return allShow(), nil })
	if err != nil {
		s.log.Warn("the Service's EndpointSlices do not show the agents' port yet; traffic may reach the app directly for a while", "svc", name, "port", port, "err", err)
	}
}

func hasPort(ports []discoveryv1.EndpointPort, port int32) bool {
	for _, p := range ports {
		if p.Port != nil && *p.Port == port {
			return true
		}
	}
	return false
}

// restoreServices undoes retargetServices once no intercept of the same
// workload and port uses the Service mechanism any more.
func (s *Server) restoreServices(ctx context.Context, ic *intercept) {
	s.imu.Lock()
	for _, other := range s.intercepts {
		if other.mech == mechService && other.pb.WorkloadName == ic.pb.WorkloadName && other.pb.Port == ic.pb.Port {
			s.imu.Unlock()
			return
		}
	}
	s.imu.Unlock()
	for _, name := range ic.services {
		svc, err := s.cfg.Client.CoreV1().Services(s.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			err = restoreService(ctx, s.cfg.Client, svc)
		}
		if err != nil {
			s.log.Warn("restore service", "svc", name, "err", err)
			continue
		}
		s.log.Info("service restored", "svc", name, "intercept", ic.pb.Name)
	}
}

// restoreService puts back the targetPorts recorded in svc's annotations.
func restoreService(ctx context.Context, c kubernetes.Interface, svc *corev1.Service) error {
	changed := false
	for i, p := range svc.Spec.Ports {
		key := AnnotOriginalTargetPort + portKey(p)
		if orig, ok := svc.Annotations[key]; ok {
			svc.Spec.Ports[i].TargetPort = intstr.Parse(orig)
			delete(svc.Annotations, key)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	_, err := c.CoreV1().Services(svc.Namespace).Update(ctx, svc, metav1.UpdateOptions{})
	return err
}

// RestoreServices puts back every Service in ns that the Service mechanism
// retargeted, from its annotations: for uninstall, when no manager is left
// to do it.
func RestoreServices(ctx context.Context, c kubernetes.Interface, ns string) error {
	svcs, err := c.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list services in %s: %w", ns, err)
	}
	for i := range svcs.Items {
		if err := restoreService(ctx, c, &svcs.Items[i]); err != nil {
			return fmt.Errorf("restore service %s/%s: %w", ns, svcs.Items[i].Name, err)
		}
	}
	return nil
}

func portKey(p corev1.ServicePort) string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprint(p.Port)
}

// targets reports whether a Service port's targetPort is the container port.
func targets(pod *corev1.Pod, tp intstr.IntOrString, port, want int32) bool {
	switch {
	case tp.Type == intstr.String && tp.StrVal != "":
		for _, c := range pod.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == tp.StrVal {
					return cp.ContainerPort == want
				}
			}
		}
		return false
	case tp.IntVal == 0:
		return port == want
	default:
		return tp.IntVal == want
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func netipFromSlice(b []byte) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(b)
	return a.Unmap(), ok
}
