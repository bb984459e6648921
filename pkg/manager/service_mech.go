package manager

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-tele/kubectl-tele/pkg/kubewait"
	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/state"
	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// retargetServices is the no-capability mechanism: the Service ports the
// laptop found leading to the intercepted port (InterceptTarget's
// service_ports) are pointed at the agents' port (every pod of the workload
// has an agent, which passes what it does not route on to the app). Each
// port is retargeted only while its targetPort is still the one the laptop
// saw (or an earlier intercept of the same port recorded as the original),
// so that a Service changed in between is refused, not guessed at.
func (s *Server) retargetServices(ctx context.Context, ic *state.Intercept) error {
	refs := ic.ServicePorts
	if len(refs) == 0 {
		return status.Errorf(codes.FailedPrecondition, "Pod Security forbids the agent's NET_ADMIN here, and no Service leads to port %d of %s/%s, which the capability-free mechanism needs", ic.PB.Port, ic.PB.WorkloadKind, ic.PB.WorkloadName)
	}
	byService := map[string][]*teleproto.ServicePortRef{}
	var names []string
	for _, r := range refs {
		if _, seen := byService[r.GetService()]; !seen {
			names = append(names, r.GetService())
		}
		byService[r.GetService()] = append(byService[r.GetService()], r)
	}
	pods, err := s.runningPods(ctx, ic.Pods)
	if err != nil {
		return err
	}
	s.imu.Lock()
	agentPort := intstr.FromInt32(int32(s.table.ServiceAgentPort(ic, pods)))
	s.imu.Unlock()
	var retargeted []string
	for _, name := range names {
		svc, err := s.cfg.Client.CoreV1().Services(s.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return status.Errorf(codes.FailedPrecondition, "Service %s/%s is gone since kubectl tele looked: intercept again", s.cfg.Namespace, name)
		} else if err != nil {
			return status.Errorf(codes.Unavailable, "get Service %s/%s: %v", s.cfg.Namespace, name, err)
		}
		if err := retargetPorts(svc, byService[name], agentPort); err != nil {
			return status.Errorf(codes.FailedPrecondition, "Service %s/%s: %v", s.cfg.Namespace, name, err)
		}
		if _, err := s.cfg.Client.CoreV1().Services(s.cfg.Namespace).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			return status.Errorf(codes.Unavailable, "point Service %s at the agents: %v", svc.Name, err)
		}
		retargeted = append(retargeted, svc.Name)
		s.imu.Lock()
		ic.Services = append(ic.Services, svc.Name)
		s.imu.Unlock()
		s.log.Info("service retargeted to the agents", "svc", svc.Name, "intercept", ic.PB.Name)
	}
	for _, name := range retargeted {
		s.awaitEndpointSlices(ctx, name, agentPort.IntVal)
	}
	return nil
}

// retargetPorts points svc's ports refs at to, recording each port's
// original targetPort in svc's annotations (an earlier intercept of the
// same port may have done so already). It fails, changing nothing that
// matters (svc is only written by the caller), when a port is gone or no
// longer has the targetPort the laptop resolved it with.
func retargetPorts(svc *corev1.Service, refs []*teleproto.ServicePortRef, to intstr.IntOrString) error {
	for _, r := range refs {
		i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
			return p.Name == r.GetName() && uint32(p.Port) == r.GetPort() && p.Protocol == corev1.ProtocolTCP
		})
		if i < 0 {
			return fmt.Errorf("it has no TCP port %s any more: intercept again", describeRef(r))
		}
		p := &svc.Spec.Ports[i]
		key := objects.AnnotOriginalTargetPort + objects.PortKey(*p)
		now, recorded := svc.Annotations[key]
		if !recorded {
			now = p.TargetPort.String()
		}
		if now != r.GetTargetPort() {
			return fmt.Errorf("port %s now targets %s, not %s as when kubectl tele resolved it: intercept again", describeRef(r), now, r.GetTargetPort())
		}
		if svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		svc.Annotations[key] = now
		p.TargetPort = to
	}
	return nil
}

func describeRef(r *teleproto.ServicePortRef) string {
	if r.GetName() == "" {
		return fmt.Sprint(r.GetPort())
	}
	return fmt.Sprintf("%s (%d)", r.GetName(), r.GetPort())
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

// restoreService undoes retargetServices for Service name: the
// controller's, once no intercept retargets it (syncService).
func (s *Server) restoreService(ctx context.Context, name string) error {
	svc, err := s.cfg.Client.CoreV1().Services(s.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		err = objects.RestoreService(ctx, s.cfg.Client, svc)
	}
	if err != nil {
		return fmt.Errorf("restore Service %s/%s: %w", s.cfg.Namespace, name, err)
	}
	s.log.Info("service restored", "svc", name)
	return nil
}
