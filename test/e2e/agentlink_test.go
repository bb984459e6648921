//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// cniBridge is the node's CNI bridge (hack/kind/lib.sh: CNI_BRIDGE): every
// packet between two pods of the node, and to a ClusterIP, crosses it.
const cniBridge = "tele-cni0"

// TestAgentLink: what crosses the pod network between the agents and the
// manager is encrypted, agents trust only their namespace's CA, and the app
// beside an agent cannot read its token. One workload serves HTTPS with
// shareProcessNamespace: true, its app running as root; a developer
// intercepts it with --tls-secret and a header, so the manager hands the
// agent the TLS key, and the intercepted requests cross the agents' link.
func TestAgentLink(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "agentlink", nil)
	ctx := ctxFor(t, 15*time.Minute)
	probe := e2eProbe(t)
	const app = "echo-link"
	ca := testcert.NewCA(t, "kubectl-tele e2e CA")
	pair := ca.Leaf(t, app, app+"."+ns, app+"."+ns+".svc", app+"."+ns+".svc.cluster.local")
	for _, s := range []*corev1.Secret{
		tlsSecret(app, corev1.SecretTypeTLS, pair.CertPEM, pair.KeyPEM),
		{ObjectMeta: metav1.ObjectMeta{Name: "test-ca"}, Data: map[string][]byte{"ca.crt": ca.PEM}},
	} {
		if _, err := c.client.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create secret %s: %v", s.Name, err)
		}
	}
	c.deploy(t, ns, app, 1, corev1.Container{
		Image:   echoImage,
		Command: []string{"/echo", "serve", "-http", ":8443", "-udp", "", "-tls-cert", "/tls/tls.crt", "-tls-key", "/tls/tls.key"},
		Ports:   []corev1.ContainerPort{{Name: "https", ContainerPort: 8443, Protocol: corev1.ProtocolTCP}},
		VolumeMounts: []corev1.VolumeMount{{Name: "tls", MountPath: "/tls", ReadOnly: true},
			{Name: "tools", MountPath: "/tools", ReadOnly: true}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8443), Scheme: corev1.URISchemeHTTPS}},
			PeriodSeconds: 1,
		},
		// Root, as many apps are: the agent with NET_ADMIN runs as root too.
		SecurityContext: &corev1.SecurityContext{RunAsUser: new(int64(0))},
	}, withSecretVolume("tls", app), probe.volume, func(s *corev1.PodSpec) { s.ShareProcessNamespace = new(true) })

	d := connectDevelopers(ctx, t, ns, 45)
	l, u := d[0].l, d[0].u
	l.localServer(t, u, 7045, "LAPTOP-LINK")

	capture := startCapture(t, cniBridge, fmt.Sprintf("tcp port %d", teleproto.AgentPort))
	// The agent is attached, gets its token (in its environment) and the
	// TLS key (from the manager), all while the capture runs.
	if out, err := l.tele(ctx, u, "intercept", "deploy/"+app, "--port", "7045:https", "--tls-secret", app, "--http-match", "x-dev=link"); err != nil {
		t.Fatalf("intercept: %v\n%s", err, out)
	}
	marker := "tele-marker-" + rand.Text()
	url := fmt.Sprintf("https://%s.%s.svc:8443/", app, ns)
	const n = 10
	args := []string{"/echo", "get", "-ca", "/ca/ca.crt", "-H", "x-dev=link", "-H", "x-marker=" + marker}
	for i := range n {
		args = append(args, fmt.Sprintf("%s%s/%d", url, marker, i))
	}
	log := c.podLog(t, ns, c.startWithSecret(t, ns, "test-ca", "/ca", args...), true)
	if got := strings.Count(log, "LAPTOP-LINK"); got != n {
		t.Fatalf("%d of %d requests reached the laptop:\n%s", got, n, log)
	}
	pcap := capture.stop(t)

	t.Run("the agents' link carries no intercepted byte, token or key in cleartext", func(t *testing.T) {
		packets, payload := pcapStats(t, pcap)
		t.Logf("capture of %s, tcp port %d: %d packets, %d bytes of frames", cniBridge, teleproto.AgentPort, packets, payload)
		// Not empty, and the agents' link: its TLS ClientHello names the
		// manager, in the clear, as TLS 1.3 does.
		if packets < 2*n || !bytes.Contains(pcap, []byte(teleproto.ManagerServerName(ns))) {
			t.Fatalf("the capture has %d packets, and the agents' TLS handshake %v: it did not see the link", packets, bytes.Contains(pcap, []byte(teleproto.ManagerServerName(ns))))
		}
		sec, err := c.client.CoreV1().Secrets(ns).Get(ctx, "kubectl-tele-agent", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		keyBody := bytes.Split(bytes.TrimSpace(pair.KeyPEM), []byte("\n"))[1]
		for what, b := range map[string][]byte{
			"the marker header":              []byte(marker),
			"PRIVATE KEY":                    []byte("PRIVATE KEY"),
			"the TLS key's first line":       keyBody,
			"the agents' token":              sec.Data["token"],
			"the agents' token header's key": []byte(teleproto.AgentTokenHeader),
		} {
			if len(b) == 0 {
				t.Fatalf("nothing to look for as %s", what)
			}
			if bytes.Contains(pcap, b) {
				t.Errorf("the capture holds %s in cleartext", what)
			}
		}
	})

	t.Run("the app cannot read the agent's token from /proc", func(t *testing.T) {
		pod := c.podsOf(t, ns, app)[0]
		if len(pod.Spec.EphemeralContainers) == 0 || pod.Spec.ShareProcessNamespace == nil || !*pod.Spec.ShareProcessNamespace {
			t.Fatalf("pod %s: no agent, or no shared process namespace", pod.Name)
		}
		out, err := exec.CommandContext(ctx, filepath.Join(kindDir, ".cache", "kubernetes-v1.37.2", "kubectl"), "--kubeconfig", kubeconfig,
			"exec", "-n", ns, pod.Name, "-c", app, "--", "/tools/probe", "environ").CombinedOutput()
		t.Logf("probe environ in the app container (root):\n%s", out)
		if err != nil {
			t.Fatalf("kubectl exec: %v", err)
		}
		s := string(out)
		// The control: the app reads its own server's environment, so a
		// refusal of the agent's is the agent's doing.
		if !strings.Contains(s, "agents seen: 1") || !strings.Contains(s, "denied: environ of agent") ||
			strings.Contains(s, "ALLOWED") || !strings.Contains(s, "(/echo) read") {
			t.Errorf("want the one agent's environment refused, and the app's own read")
		}
	})

	t.Run("an agent refuses a manager its CA did not sign", func(t *testing.T) {
		job, err := c.client.BatchV1().Jobs(ns).Get(ctx, managerJob, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		image := job.Spec.Template.Spec.Containers[0].Image
		nsCA, err := c.client.CoreV1().Secrets(ns).Get(ctx, "kubectl-tele-agent-ca", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The same agent, by the manager's Service's name, given first a
		// CA of the test's own (the namespace's manager is then, to it,
		// one its CA did not sign), then the namespace's CA. A wrong token
		// in both: the second gets through TLS and is refused for it.
		for _, tc := range []struct {
			name, ca, says string
		}{
			{"impostor", string(testcert.NewCA(t, "not the namespace's CA").PEM), "certificate signed by unknown authority"},
			{"control", string(nsCA.Data["ca.crt"]), "the manager refused this agent"},
		} {
			pod := agentPodRunning(image, ns, tc.name, tc.ca)
			created, err := c.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			log := c.podLog(t, ns, created.Name, true)
			t.Logf("agent given the %s CA:\n%s", tc.name, log)
			if !strings.Contains(log, tc.says) {
				t.Errorf("agent given the %s CA: its log does not say %q", tc.name, tc.says)
			}
			if tc.name == "impostor" && !strings.Contains(log, "not signed by this namespace's CA") {
				t.Errorf("the agent did not refuse the manager for its certificate")
			}
		}
	})
}

// agentPodRunning is a pod that runs only the agent of image, as an
// intercept adds it but without NET_ADMIN, trusting caPEM, with a token
// that is not the namespace's.
func agentPodRunning(image, ns, name, caPEM string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-" + name, Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "agent", Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
				Args: []string{"agent", fmt.Sprintf("--manager=%s.%s.svc:%d", teleproto.AgentServiceName, ns, teleproto.AgentPort), "--container=agent"},
				Env: []corev1.EnvVar{
					{Name: "TELE_AGENT_TOKEN", Value: "not-the-token"},
					{Name: "TELE_AGENT_CA", Value: caPEM},
					{Name: "POD_NAME", Value: "agent-" + name},
					{Name: "POD_NAMESPACE", Value: ns},
				},
				SecurityContext: &corev1.SecurityContext{RunAsUser: new(int64(65532)), RunAsNonRoot: new(true), AllowPrivilegeEscalation: new(false),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			}},
		},
	}
}

// capture is a running tcpdump.
type capture struct {
	cmd  *exec.Cmd
	file string
}

// startCapture captures every packet on dev that filter passes, whole,
// into a file, and returns once tcpdump says it listens.
func startCapture(t *testing.T, dev, filter string) *capture {
	t.Helper()
	file := filepath.Join(t.TempDir(), "capture.pcap")
	cmd := exec.Command("tcpdump", "-i", dev, "-n", "-U", "-s", "0", "-Z", "root", "-w", file, filter)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump (hack/kind/install-deps.sh installs it): %v", err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), "listening on") {
				listening <- ""
				for sc.Scan() { // drain until tcpdump exits
				}
				return
			}
		}
		listening <- strings.Join(lines, "\n")
	}()
	c := &capture{cmd: cmd, file: file}
	t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	select {
	case out := <-listening:
		if out != "" {
			t.Fatalf("tcpdump on %s did not start:\n%s", dev, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("tcpdump on %s did not start listening", dev)
	}
	return c
}

// stop ends the capture and returns the file's bytes.
func (c *capture) stop(t *testing.T) []byte {
	t.Helper()
	c.cmd.Process.Signal(os.Interrupt)
	c.cmd.Wait()
	b, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pcapStats counts the packets of a pcap file (as tcpdump writes it, in
// this machine's byte order) and their captured bytes.
func pcapStats(t *testing.T, b []byte) (packets, size int) {
	t.Helper()
	if len(b) < 24 || binary.NativeEndian.Uint32(b) != 0xa1b2c3d4 {
		t.Fatalf("not a pcap file (%d bytes)", len(b))
	}
	for off := 24; off+16 <= len(b); {
		n := int(binary.NativeEndian.Uint32(b[off+8:]))
		packets, size = packets+1, size+n
		off += 16 + n
	}
	return packets, size
}

// e2eProbeT is the intruder (hack/kind/apps/probe), built from this
// checkout, where pods reach it: the node is this machine.
type e2eProbeT struct {
	path string
	// volume mounts its folder at /tools in a pod's containers that ask.
	volume func(*corev1.PodSpec)
}

var (
	probeOnce sync.Once
	probeErr  error
)

func e2eProbe(t *testing.T) e2eProbeT {
	t.Helper()
	dir := fmt.Sprintf("/tmp/tele-e2e-tools%s", slotSuffix())
	p := e2eProbeT{path: filepath.Join(dir, "probe"), volume: func(s *corev1.PodSpec) {
		s.Volumes = append(s.Volumes, corev1.Volume{Name: "tools", VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: new(corev1.HostPathDirectory)}}})
	}}
	probeOnce.Do(func() {
		os.MkdirAll(dir, 0o755)
		cmd := exec.Command("go", "build", "-o", p.path, "./hack/kind/apps/probe")
		cmd.Dir, cmd.Env = repoRoot, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = fmt.Errorf("build the probe: %v\n%s", err, out)
		}
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return p
}

// runProbe runs the probe with args in a pod of the echo image, to
// completion, and returns its log.
func (c *cluster) runProbe(t *testing.T, ns string, args ...string) string {
	t.Helper()
	p := e2eProbe(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "probe", Image: echoImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Command:      append([]string{"/tools/probe"}, args...),
				VolumeMounts: []corev1.VolumeMount{{Name: "tools", MountPath: "/tools", ReadOnly: true}},
			}},
		},
	}
	p.volume(&pod.Spec)
	created, err := c.client.CoreV1().Pods(ns).Create(ctxFor(t, time.Minute), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create probe pod: %v", err)
	}
	return c.podLog(t, ns, created.Name, true)
}
