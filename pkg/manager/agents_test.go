package manager

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

const (
	testHost = "kubectl-tele-manager." + testNS + ".svc.cluster.local.:8082"
	testIP   = "10.96.0.50:8082"
)

// TestAgentAddress: an agent gets the Service's name where its pod resolves
// cluster names, the ClusterIP where it does not.
func TestAgentAddress(t *testing.T) {
	s := &Server{agentHost: testHost, agentIP: testIP}
	for _, tc := range []struct {
		policy      corev1.DNSPolicy
		hostNetwork bool
		want        string
	}{
		{"", false, testHost},
		{corev1.DNSClusterFirst, false, testHost},
		{corev1.DNSClusterFirst, true, testIP}, // falls back to Default
		{corev1.DNSClusterFirstWithHostNet, true, testHost},
		{corev1.DNSClusterFirstWithHostNet, false, testHost},
		{corev1.DNSDefault, false, testIP},
		{corev1.DNSNone, false, testIP},
		{"", true, testIP},
	} {
		p := &corev1.Pod{Spec: corev1.PodSpec{DNSPolicy: tc.policy, HostNetwork: tc.hostNetwork}}
		if got := s.agentAddress(p); got != tc.want {
			t.Errorf("dnsPolicy %q hostNetwork %v: %s, want %s", tc.policy, tc.hostNetwork, got, tc.want)
		}
	}
}

func TestAgentServiceHost(t *testing.T) {
	for _, tc := range []struct {
		search []string
		want   string
	}{
		{[]string{testNS + ".svc.cluster.local", "svc.cluster.local", "cluster.local"}, "kubectl-tele-manager.team.svc.cluster.local."},
		{[]string{testNS + ".svc.corp.example", "svc.corp.example", "corp.example"}, "kubectl-tele-manager.team.svc.corp.example."},
		{[]string{"example.com"}, "kubectl-tele-manager.team.svc"},
		{nil, "kubectl-tele-manager.team.svc"},
	} {
		if got := agentServiceHost(testNS, tc.search); got != tc.want {
			t.Errorf("search %v: %s, want %s", tc.search, got, tc.want)
		}
	}
}

// agentPod is a pod with the agent containers given as name=state
// (running, ended, waiting) and manager addresses.
func agentPod(agents ...[3]string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger-x"}})
	for _, a := range agents {
		name, state, addr := a[0], a[1], a[2]
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: name, Args: []string{"agent", "--manager=" + addr, "--container=" + name},
		}})
		st := corev1.ContainerStatus{Name: name}
		switch state {
		case "running":
			st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.Now()}
		case "ended":
			st.State.Terminated = &corev1.ContainerStateTerminated{Reason: "Completed"}
		default:
			st.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		}
		p.Status.EphemeralContainerStatuses = append(p.Status.EphemeralContainerStatuses, st)
	}
	return p
}

// TestSupersededBy: only a pod's newest agent may serve it.
func TestSupersededBy(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pod       *corev1.Pod
		container string
		refused   bool
	}{
		{"the only agent", agentPod([3]string{"tele-agent", "running", testHost}), "tele-agent", false},
		{"the newest of two", agentPod([3]string{"tele-agent", "running", testIP}, [3]string{"tele-agent-2", "running", testHost}), "tele-agent-2", false},
		{"an older one", agentPod([3]string{"tele-agent", "running", testIP}, [3]string{"tele-agent-2", "running", testHost}), "tele-agent", true},
		{"an older one, the newest not started", agentPod([3]string{"tele-agent", "running", testIP}, [3]string{"tele-agent-2", "waiting", testHost}), "tele-agent", true},
		{"an unnamed agent alone", agentPod([3]string{"tele-agent", "running", testIP}), "", false},
		{"an unnamed agent beside another", agentPod([3]string{"tele-agent", "running", testIP}, [3]string{"tele-agent-2", "running", testHost}), "", true},
		{"an unnamed agent beside an ended one", agentPod([3]string{"tele-agent", "ended", testIP}, [3]string{"tele-agent-2", "running", testHost}), "", false},
		{"a pod without agents in its spec", agentPod(), "tele-agent", false},
	} {
		why := supersededBy(tc.pod, tc.container)
		if (why != "") != tc.refused {
			t.Errorf("%s: supersededBy = %q, want refused %v", tc.name, why, tc.refused)
		}
	}
}

// testCA is the agents' CA in agentTestServer's namespace.
var testCA = sync.OnceValues(func() (certPEM, keyPEM []byte) {
	c, k, err := newCA(testNS, time.Now())
	if err != nil {
		panic(err)
	}
	return c, k
})

// currentAgentEnv is the environment agentTestServer's manager gives its
// agents: its token's ID and its CA.
func currentAgentEnv() []corev1.EnvVar {
	ca, _ := testCA()
	return []corev1.EnvVar{{Name: tokenIDEnv, Value: "uid-1"}, {Name: caEnv, Value: string(ca)}}
}

// TestStaleAgent: an agent given an earlier Service's ClusterIP, holding
// an earlier install's token, or trusting another CA can never serve this
// manager.
func TestStaleAgent(t *testing.T) {
	ca, _ := testCA()
	other, _, err := newCA(testNS, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	agent := func(addr, tokenID string, caPEM ...[]byte) *corev1.EphemeralContainer {
		if len(caPEM) == 0 {
			caPEM = append(caPEM, ca)
		}
		return &corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "tele-agent", Args: []string{"agent", "--manager=" + addr},
			Env: []corev1.EnvVar{{Name: tokenIDEnv, Value: tokenID}, {Name: caEnv, Value: string(caPEM[0])}}}}
	}
	for _, tc := range []struct {
		name  string
		c     *corev1.EphemeralContainer
		stale string // in the reason; "" if not stale
	}{
		{"this Service's IP", agent(testIP, "uid-1"), ""},
		{"an earlier Service's IP", agent("10.96.0.7:8082", "uid-1"), "10.96.0.7:8082"},
		{"an earlier Service's IPv6", agent("[fd00::7]:8082", "uid-1"), "[fd00::7]:8082"},
		{"the Service's name", agent(testHost, "uid-1"), ""},
		{"a relative name", agent("kubectl-tele-manager.team.svc:8082", "uid-1"), ""},
		{"the name, another install's token", agent(testHost, "uid-0"), "token"},
		{"the name, another install's CA", agent(testHost, "uid-1", other), "CA of an earlier install"},
	} {
		got := staleAgent(tc.c, testIP, "uid-1", string(ca))
		if (got != "") != (tc.stale != "") || !strings.Contains(got, tc.stale) {
			t.Errorf("%s: staleAgent = %q, want it to mention %q", tc.name, got, tc.stale)
		}
	}
}

// agentTestServer is a Server whose agents' Service and token exist, as Run's
// setupAgents makes them, on a fake clientset holding pod.
func agentTestServer(t *testing.T, pod *corev1.Pod) (*Server, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(pod,
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: AgentService, Namespace: testNS}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.50"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: objects.AgentSecret, Namespace: testNS, UID: types.UID("uid-1")}, Data: map[string][]byte{agentTokenKey: []byte("tok")}},
		testCASecret())
	s := setUpAgents(t, client)
	if s.agentHost != testHost || s.agentIP != testIP || s.tokenID != "uid-1" {
		t.Fatalf("setupAgents: host %s, IP %s, token ID %s", s.agentHost, s.agentIP, s.tokenID)
	}
	return s, client
}

// testCASecret is the Secret holding testCA.
func testCASecret() *corev1.Secret {
	c, k := testCA()
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: objects.AgentCASecret, Namespace: testNS}, Data: map[string][]byte{caCertKey: c, caKeyKey: k}}
}

// setUpAgents returns a Server on client that has run setupAgents.
func setUpAgents(t *testing.T, client *fake.Clientset) *Server {
	t.Helper()
	cfg := testConfig(t)
	cfg.Client = client
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.setupAgents(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAttachAgentTakesOverFromStale: a pod whose running agent was given an
// earlier Service's ClusterIP (uninstall, then connect) gets a new agent at
// once, by the Service's name, with its own name to say in its hello.
func TestAttachAgentTakesOverFromStale(t *testing.T) {
	pod := agentPod([3]string{"tele-agent", "running", "10.96.0.7:8082"})
	s, client := agentTestServer(t, pod)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.attachAgent(ctx, pod, mechNone, false)
	// Nothing registers in this test: the wait for the new agent ends with
	// ctx, and the hint names it.
	wantCode(t, "attach", err, codes.DeadlineExceeded, "-c tele-agent-2", "waits for the earlier agent tele-agent")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("attach took %v: it waited for the stale agent", d)
	}
	got, err := client.CoreV1().Pods(testNS).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := newestAgent(got)
	if c == nil || c.Name != "tele-agent-2" {
		t.Fatalf("newest agent %+v, want tele-agent-2", c)
	}
	if !slices.Contains(c.Args, "--manager="+testHost) || !slices.Contains(c.Args, "--container=tele-agent-2") {
		t.Errorf("new agent's args %v", c.Args)
	}
	for _, e := range currentAgentEnv() {
		if !slices.Contains(c.Env, e) {
			t.Errorf("new agent's env %v lacks %s", c.Env, e.Name)
		}
	}
}

// TestAttachAgentAdopts: a running agent of this install (the manager pod
// restarted) is waited for and adopted, not replaced.
// On synctest's clock: the agent says hello while attachAgent waits.
func TestAttachAgentAdopts(t *testing.T) { synctest.Test(t, testAttachAgentAdopts) }

func testAttachAgentAdopts(t *testing.T) {
	pod := agentPod([3]string{"tele-agent", "running", testHost})
	pod.Spec.EphemeralContainers[1].Env = currentAgentEnv()
	s, client := agentTestServer(t, pod)
	go func() {
		time.Sleep(300 * time.Millisecond)
		s.agents.mu.Lock()
		s.agents.byPod["web"] = &agentConn{hello: &teleproto.AgentHello{Pod: "web", Container: "tele-agent", CanRedirect: true}, done: make(chan struct{})}
		s.agents.mu.Unlock()
		s.changes.fire()
	}()
	mech, err := s.attachAgent(context.Background(), pod, mechNone, false)
	if err != nil || mech != mechNftables {
		t.Fatalf("attach: %q, %v", mech, err)
	}
	got, _ := client.CoreV1().Pods(testNS).Get(context.Background(), "web", metav1.GetOptions{})
	if n := len(got.Spec.EphemeralContainers); n != 2 {
		t.Errorf("%d ephemeral containers, want the 2 there were", n)
	}
}

// TestWaitAgentHint: the hint names the pod's live agent, not the first.
func TestWaitAgentHint(t *testing.T) {
	pod := agentPod([3]string{"tele-agent", "ended", testIP}, [3]string{"tele-agent-2", "running", testHost})
	s, _ := agentTestServer(t, pod)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := s.waitAgent(ctx, "web", "")
	wantCode(t, "wait", err, codes.DeadlineExceeded, "kubectl logs -n team web -c tele-agent-2")
}

// TestSetupAgentsReusesEarlierIP: after uninstall, the new Service asks for
// the ClusterIP that running agents were given (pods that cannot resolve
// its name), and takes any when that one is gone.
func TestSetupAgentsReusesEarlierIP(t *testing.T) {
	for _, taken := range []bool{false, true} {
		pod := agentPod([3]string{"tele-agent", "ended", "10.96.0.9:8082"}, [3]string{"tele-agent-2", "running", "10.96.0.7:8082"})
		other := agentPod([3]string{"tele-agent", "running", testHost})
		other.Name = "api"
		client := fake.NewClientset(pod, other)
		var asked []string
		client.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
			svc := a.(k8stesting.CreateAction).GetObject().(*corev1.Service)
			asked = append(asked, svc.Spec.ClusterIP)
			if taken && svc.Spec.ClusterIP != "" {
				return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, svc.Name, nil)
			}
			return false, nil, nil
		})
		setUpAgents(t, client)
		want := []string{"10.96.0.7"}
		if taken {
			want = append(want, "")
		}
		if !slices.Equal(asked, want) {
			t.Errorf("taken %v: asked for ClusterIPs %q, want %q", taken, asked, want)
		}
	}
}

// TestAttachAgentWaitsForStarting: an agent that another attach of this
// manager added, not yet started, is waited for; no second one is added.
func TestAttachAgentWaitsForStarting(t *testing.T) {
	pod := agentPod([3]string{"tele-agent", "", testHost})
	pod.Status.EphemeralContainerStatuses = nil // no status yet
	pod.Spec.EphemeralContainers[1].Env = currentAgentEnv()
	s, client := agentTestServer(t, pod)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := s.attachAgent(ctx, pod, mechNone, false)
	wantCode(t, "attach", err, codes.DeadlineExceeded, "-c tele-agent)")
	got, _ := client.CoreV1().Pods(testNS).Get(context.Background(), "web", metav1.GetOptions{})
	if c := newestAgent(got); c == nil || c.Name != "tele-agent" {
		t.Errorf("newest agent %+v, want the starting tele-agent alone", c)
	}
}
