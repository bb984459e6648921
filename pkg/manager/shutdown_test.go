package manager

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/state"
	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// retargetedEcho is a server whose session has a Service-mechanism
// intercept of deployment/echo port 8080, with Service echo pointed at the
// agents' port as retargetServices leaves it. Its pod runs but has no agent
// connected, as after the agent server has stopped: a removal that waited
// for the agent would wait 15 s.
func retargetedEcho(t *testing.T) (*Server, teleproto.ManagerClient, string, *fake.Clientset) {
	t.Helper()
	echo := map[string]string{"app": "echo"}
	client := newFakeClientset(
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS}, Status: corev1.PodStatus{PodIP: "10.244.7.3"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: testNS},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: echo}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Namespace: testNS, Labels: echo},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.7.4"}},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: testNS,
				Annotations: map[string]string{objects.AnnotOriginalTargetPort + "http": "8080"}},
			Spec: corev1.ServiceSpec{Selector: echo, Ports: []corev1.ServicePort{{
				Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(int32(teleproto.AgentListenPort(8080))),
			}}},
		})
	cfg := testConfig(t)
	cfg.Client = client
	s, c := startServer(t, cfg)
	startRestores(t, s)
	id := arrive(t, c).GetSessionId()
	ss, err := s.lookup(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	ic := testIntercept(t, ss, "echo", "echo", 8080)
	ic.Pods = state.PodSet{Selector: labels.SelectorFromSet(echo)}
	ic.Mech, ic.PB.Mech = mechService, mechService
	ic.Services = []string{"echo"}
	addIntercept(t, s, ic)
	return s, c, id, client
}

// wantRestored fails unless Service echo targets 8080 again, without the
// annotation that recorded it, and s has no intercept left.
func wantRestored(t *testing.T, s *Server, client *fake.Clientset) {
	t.Helper()
	s.imu.Lock()
	n := s.table.Len()
	s.imu.Unlock()
	if n != 0 {
		t.Errorf("%d intercepts left", n)
	}
	svc, err := client.CoreV1().Services(testNS).Get(context.Background(), "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.Spec.Ports[0].TargetPort; got != intstr.FromInt32(8080) {
		t.Errorf("Service echo targetPort %s, want 8080 (restored)", got.String())
	}
	if _, ok := svc.Annotations[objects.AnnotOriginalTargetPort+"http"]; ok {
		t.Errorf("Service echo keeps annotation %s", objects.AnnotOriginalTargetPort+"http")
	}
}

// TestCloseRestoresServices: Close, which SIGTERM leads to, restores the
// Service before it returns (the process exits then), and within the
// shutdown timeout although the pod's agent is not connected.
func TestCloseRestoresServices(t *testing.T) {
	s, _, _, client := retargetedEcho(t)
	start := time.Now()
	s.Close()
	if d := time.Since(start); d > shutdownTimeout {
		t.Errorf("Close took %v, want under %v", d, shutdownTimeout)
	}
	wantRestored(t, s, client)
}

// TestLeaveRestoresServices: leave returns once the controller has put
// the Service back.
func TestLeaveRestoresServices(t *testing.T) {
	s, c, id, client := retargetedEcho(t)
	if _, err := c.RemoveIntercept(context.Background(), &teleproto.RemoveInterceptRequest{SessionId: id, Name: "echo"}); err != nil {
		t.Fatalf("RemoveIntercept: %v", err)
	}
	wantRestored(t, s, client)
}

// TestDepartThenCloseRestoresServices: a session's end removes its
// intercepts in a goroutine that Close waits for, so a Depart just before
// a SIGTERM still restores the Service.
func TestDepartThenCloseRestoresServices(t *testing.T) {
	s, c, id, client := retargetedEcho(t)
	if _, err := c.Depart(context.Background(), &teleproto.SessionRequest{SessionId: id}); err != nil {
		t.Fatalf("Depart: %v", err)
	}
	s.Close()
	wantRestored(t, s, client)
}

// TestCloseRestoresOrphanedIntercept: an intercept whose session ended
// without removing it (CreateIntercept adding it as the session ended) is
// removed by Close too.
func TestCloseRestoresOrphanedIntercept(t *testing.T) {
	s, _, id, client := retargetedEcho(t)
	s.sessions.mu.Lock()
	ss := s.sessions.byID[id]
	delete(s.sessions.byID, id) // ended, but its cleanup did not see the intercept
	s.sessions.mu.Unlock()
	ss.cancel(errSessionEnded)
	s.Close()
	wantRestored(t, s, client)
}

// TestAwaitEndpointSlices: a retargeted Service is ready once each of its
// EndpointSlices shows the agents' port.
func TestAwaitEndpointSlices(t *testing.T) {
	cfg := testConfig(t)
	port := int32(teleproto.AgentListenPort(8080))
	cfg.Client = newFakeClientset(&discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "web-x", Namespace: testNS, Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		Ports:      []discoveryv1.EndpointPort{{Port: &port}},
	})
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.awaitEndpointSlices(context.Background(), "web", port)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("waited %s for a slice that shows the port", d)
	}
}

// TestServiceMechanism: the capability-free mechanism points exactly the
// Service ports that lead to the intercepted container port at the agents'
// port (by name, by number, or by the port itself when targetPort is
// unset), records each original, and restores it: when the intercept goes,
// and, for uninstall, from the annotations alone.
func TestServiceMechanism(t *testing.T) {
	agentPort := int32(teleproto.AgentListenPort(8080))
	echo := map[string]string{"app": "echo"}
	svc := func(name string, sel map[string]string, ports ...corev1.ServicePort) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS}, Spec: corev1.ServiceSpec{Selector: sel, Ports: ports}}
	}
	slice := func(svc string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: svc + "-x", Namespace: testNS, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			Ports:      []discoveryv1.EndpointPort{{Port: &agentPort}},
		}
	}
	byName := corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}
	metrics := corev1.ServicePort{Name: "metrics", Port: 9090, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9090)}
	samePort := corev1.ServicePort{Port: 8080, Protocol: corev1.ProtocolTCP}
	udp := corev1.ServicePort{Name: "dns", Port: 8080, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(8080)}
	objs := func() []runtime.Object {
		return []runtime.Object{
			&corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Namespace: testNS, Labels: echo},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "echo", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
				Status:     corev1.PodStatus{Phase: corev1.PodRunning},
			},
			svc("web", echo, byName, metrics), svc("direct", echo, samePort, udp), svc("other", map[string]string{"app": "other"}, samePort),
			slice("web"), slice("direct"),
		}
	}
	ref := func(svc string, p corev1.ServicePort, targetPort string) *teleproto.ServicePortRef {
		return &teleproto.ServicePortRef{Service: svc, Name: p.Name, Port: uint32(p.Port), TargetPort: targetPort}
	}
	direct, web := ref("direct", samePort, "0"), ref("web", byName, "http")
	for _, tc := range []struct {
		name       string
		refs       []*teleproto.ServicePortRef
		retargeted []string
		code       codes.Code
	}{
		{"every port the laptop found", []*teleproto.ServicePortRef{direct, web}, []string{"direct", "web"}, codes.OK},
		{"only those", []*teleproto.ServicePortRef{direct}, []string{"direct"}, codes.OK},
		{"none leads there", nil, nil, codes.FailedPrecondition},
		{"targetPort changed since", []*teleproto.ServicePortRef{ref("web", byName, "8080")}, nil, codes.FailedPrecondition},
		{"port gone since", []*teleproto.ServicePortRef{ref("web", corev1.ServicePort{Name: "grpc", Port: 81}, "http")}, nil, codes.FailedPrecondition},
		{"UDP port", []*teleproto.ServicePortRef{ref("direct", udp, "8080")}, nil, codes.FailedPrecondition},
		{"Service gone since", []*teleproto.ServicePortRef{ref("gone", samePort, "0")}, nil, codes.FailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			client := newFakeClientset(objs()...)
			cfg.Client = client
			s, err := NewServer(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ic := testIntercept(t, alice, "echo", "echo", 8080)
			ic.Pods, ic.Mech = state.PodSet{Selector: labels.SelectorFromSet(echo)}, mechService
			ic.ServicePorts = tc.refs
			ctx := context.Background()
			err = s.retargetServices(ctx, ic)
			if status.Code(err) != tc.code {
				t.Fatalf("retarget: %v, want %v", err, tc.code)
			}
			if !slices.Equal(ic.Services, tc.retargeted) {
				t.Errorf("retargeted %v, want %v", ic.Services, tc.retargeted)
			}
			get := func(name string) *corev1.Service {
				o, err := client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("services"), testNS, name)
				if err != nil {
					t.Fatal(err)
				}
				return o.(*corev1.Service)
			}
			want := map[string][]intstr.IntOrString{
				"web":    {byName.TargetPort, metrics.TargetPort},
				"direct": {samePort.TargetPort, udp.TargetPort},
				"other":  {samePort.TargetPort},
			}
			for _, name := range tc.retargeted {
				want[name][0] = intstr.FromInt32(agentPort)
			}
			check := func(step string) {
				t.Helper()
				for name, ports := range want {
					var got []intstr.IntOrString
					for _, p := range get(name).Spec.Ports {
						got = append(got, p.TargetPort)
					}
					if !slices.Equal(got, ports) {
						t.Errorf("%s: Service %s targets %v, want %v", step, name, got, ports)
					}
				}
			}
			check("retargeted")
			if len(tc.retargeted) == 0 {
				return
			}
			// Uninstall, from the annotations alone, and the manager's own
			// restore, each put back what was there.
			want["web"][0], want["direct"][0] = byName.TargetPort, samePort.TargetPort
			if err := objects.RestoreServices(ctx, client, testNS); err != nil {
				t.Fatal(err)
			}
			check("restored by uninstall")
			ic.Services = nil
			if err := s.retargetServices(ctx, ic); err != nil {
				t.Fatal(err)
			}
			for _, name := range ic.Services {
				if err := s.restoreService(ctx, name); err != nil {
					t.Fatal(err)
				}
			}
			check("restored on leave")
			for _, name := range tc.retargeted {
				if a := get(name).Annotations; len(a) != 0 {
					t.Errorf("Service %s keeps annotations %v", name, a)
				}
			}
		})
	}
}
