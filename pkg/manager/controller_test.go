package manager

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/state"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// startController runs s's controller, its restores too, until the test
// ends.
func startController(t *testing.T, s *Server) {
	t.Helper()
	s.ctl = newController(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ctl.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
	startRestores(t, s)
}

// startRestores runs the restore worker of s's controller (made if s has
// none, without its pod worker) until the test ends, as Run does: on the
// Server's restore context, beyond Close.
func startRestores(t *testing.T, s *Server) {
	t.Helper()
	if s.ctl == nil {
		s.ctl = newController(s)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ctl.runRestores(s.restore)
	}()
	t.Cleanup(func() {
		s.ctl.stopRestores()
		<-done
	})
}

func echoPod(name string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, Labels: map[string]string{"app": "echo"}},
		Status:     corev1.PodStatus{Phase: phase},
	}
}

// TestControllerAttachesNewPods: a pod of an intercepted workload gets its
// agent when it appears, still Pending, with --new-pod; a pod of another
// workload, and one going away, get none; no pod list is asked of the API
// server after the informer's first.
// On synctest's clock: a wrong attach would show once the controller is
// idle (synctest.Wait).
func TestControllerAttachesNewPods(t *testing.T) { synctest.Test(t, testControllerAttachesNewPods) }

func testControllerAttachesNewPods(t *testing.T) {
	cfg := testConfig(t)
	client := newFakeClientset()
	cfg.Client = client
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ic := testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")
	ic.Pods, ic.Mech = state.PodSet{Selector: labels.SelectorFromSet(labels.Set{"app": "echo"})}, mechNftables
	addIntercept(t, s, ic)
	startController(t, s)

	// Through the tracker, so that only the code's calls are recorded
	// (see checkRole).
	tr := client.Tracker()
	get := func(name string) *corev1.Pod {
		o, err := tr.Get(corev1.SchemeGroupVersion.WithResource("pods"), testNS, name)
		if err != nil {
			t.Fatal(err)
		}
		return o.(*corev1.Pod)
	}
	other := echoPod("other", corev1.PodPending)
	other.Labels = map[string]string{"app": "other"}
	leaving := echoPod("echo-old", corev1.PodRunning)
	leaving.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	for _, p := range []*corev1.Pod{echoPod("echo-new", corev1.PodPending), other, leaving} {
		if err := tr.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	var got *corev1.Pod
	for time.Now().Before(deadline) {
		got = get("echo-new")
		if len(got.Spec.EphemeralContainers) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(got.Spec.EphemeralContainers); n != 1 {
		t.Fatalf("echo-new has %d ephemeral containers, want its agent", n)
	}
	if a := got.Spec.EphemeralContainers[0]; a.Name != agentContainer || !slices.Contains(a.Args, "--new-pod") {
		t.Errorf("agent %s %v, want %s with --new-pod", a.Name, a.Args, agentContainer)
	}
	time.Sleep(100 * time.Millisecond) // time for a wrong attach to show
	synctest.Wait()
	for _, name := range []string{"other", "echo-old"} {
		if p := get(name); len(p.Spec.EphemeralContainers) != 0 {
			t.Errorf("%s got an agent", name)
		}
	}
	var lists int
	for _, a := range client.Actions() {
		if a.GetVerb() == "list" && a.GetResource().Resource == "pods" {
			lists++
		}
	}
	if lists != 1 {
		t.Errorf("%d pod lists, want the informer's one", lists)
	}
}

// TestControllerRoutesAndCoverage: an agent that connects gets its pod's
// routes from the controller, and the intercept lists its pod as covered
// only once the agent has applied them.
func TestControllerRoutesAndCoverage(t *testing.T) {
	cfg := testConfig(t)
	client := newFakeClientset(echoPod("echo-1", corev1.PodRunning))
	cfg.Client = client
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ic := testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")
	ic.Pods, ic.Mech = state.PodSet{Selector: labels.SelectorFromSet(labels.Set{"app": "echo"})}, mechNftables
	addIntercept(t, s, ic)
	ac := &agentConn{hello: &teleproto.AgentHello{Pod: "echo-1"}, updates: make(chan *teleproto.AgentRoutes, 1), changed: make(chan struct{}), done: make(chan struct{})}
	s.agents.byPod["echo-1"] = ac
	startController(t, s)

	var u *teleproto.AgentRoutes
	select {
	case u = <-ac.updates:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent got no routes")
	}
	if len(u.GetRoutes()) != 1 || u.GetRoutes()[0].GetIntercept() != ic.ID {
		t.Fatalf("routes %v, want the intercept's", u.GetRoutes())
	}
	ctx := context.Background()
	if covered, uncovered := s.coverage(ctx, ic.ID, ic.Pods); len(covered) != 0 || !slices.Equal(uncovered, []string{"echo-1"}) {
		t.Errorf("before the agent applied: covered %v, uncovered %v", covered, uncovered)
	}
	ac.mu.Lock()
	ac.applied = u.GetVersion()
	ac.mu.Unlock()
	if covered, uncovered := s.coverage(ctx, ic.ID, ic.Pods); !slices.Equal(covered, []string{"echo-1"}) || len(uncovered) != 0 {
		t.Errorf("after: covered %v, uncovered %v", covered, uncovered)
	}
}

// TestCreateInterceptThroughController: CreateIntercept attaches nothing
// itself: the controller adds the pod's agent (one patch, without
// --new-pod: the pod is not new to an intercept), the agent's hello decides
// the mechanism, and the RPC returns once the agent has applied its routes,
// whose listen port is not one the pod declares.
func TestCreateInterceptThroughController(t *testing.T) {
	cfg := testConfig(t)
	pod := echoPod("echo-1", corev1.PodRunning)
	pod.Spec.Containers = []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}, {ContainerPort: 48080}}}}
	client := newFakeClientset(pod)
	cfg.Client = client
	s, c := startServer(t, cfg)
	startController(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Arrive(ctx, proven(t, c, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := client.CoreV1().Pods(testNS).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// The agent: it registers once its container is in the pod, and
	// applies what it is sent.
	routes := make(chan *teleproto.AgentRoutes, 1)
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || len(p.Spec.EphemeralContainers) == 0 {
				continue
			}
			a := p.Spec.EphemeralContainers[0]
			if slices.Contains(a.Args, "--new-pod") {
				t.Errorf("agent args %v: the pod is not new", a.Args)
			}
			ac := &agentConn{hello: &teleproto.AgentHello{Pod: p.Name, Container: a.Name, CanRedirect: true},
				updates: make(chan *teleproto.AgentRoutes, 1), changed: make(chan struct{}), done: make(chan struct{})}
			s.agents.register(ac)
			select {
			case u := <-ac.updates:
				ac.mu.Lock()
				ac.applied = u.GetVersion()
				ac.mu.Unlock()
				s.changes.fire()
				routes <- u
			case <-ctx.Done():
			}
			return
		}
	}()
	ic, err := c.CreateIntercept(ctx, &teleproto.CreateInterceptRequest{SessionId: resp.GetSessionId(), Name: "echo", WorkloadKind: "Deployment", WorkloadName: "echo",
		Port: 8080, LocalPort: 7070, HttpMatch: []string{"x-dev=alice"}, Target: echoTarget})
	if err != nil {
		t.Fatalf("CreateIntercept: %v", err)
	}
	if ic.GetMech() != mechNftables || !slices.Equal(ic.GetPods(), []string{"echo-1"}) || ic.GetInterceptState() != teleproto.InterceptState_INTERCEPT_STATE_ACTIVE {
		t.Errorf("intercept %v", ic)
	}
	u := <-routes
	if rs := u.GetRoutes(); len(rs) != 1 || rs[0].GetAgentPort() != 48081 {
		t.Errorf("routes %v, want one at agent port 48081 (the app declares 48080)", rs)
	}
	patches := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == "patch" && a.GetSubresource() == "ephemeralcontainers" {
			patches++
		}
	}
	if patches != 1 {
		t.Errorf("%d patches of the pod's ephemeral containers, want 1", patches)
	}
}
