//go:build e2e

// Package e2e holds the end-to-end tests of kubectl-tele. They run against
// the real local cluster of hack/kind (make e2e brings it up) and drive
// laptops: network namespaces that reach the API server and nothing else.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const echoImage = "10.201.0.1:5000/echo:dev" // hack/kind/lib.sh: ECHO_IMAGE, in the cluster's registry

var (
	repoRoot   = mustRepoRoot()
	kindDir    = filepath.Join(repoRoot, "hack", "kind")
	kubeconfig = envOr("KUBECONFIG_E2E", filepath.Join(kindDir, ".cluster", "kubeconfig"))
)

func mustRepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// cluster is the test's handle on the local cluster.
type cluster struct {
	config *rest.Config
	client kubernetes.Interface
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	if _, err := os.Stat(kubeconfig); err != nil {
		t.Fatalf("no local cluster (%v): run make cluster-up, or make e2e", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("load kubeconfig %s: %v", kubeconfig, err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{config: cfg, client: c}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// namespace makes a fresh namespace, deleted when the test ends.
func (c *cluster) namespace(t *testing.T, prefix string, labels map[string]string) string {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	ns, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = c.client.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
	})
	// Registered after the deletion, so it runs before it.
	t.Cleanup(func() {
		if t.Failed() || keepLogs {
			c.dumpPodLogs(t, ns.Name)
		}
	})
	return ns.Name
}

// keepLogs (E2E_KEEP_LOGS=1) saves the logs of a test that passed too.
var keepLogs = os.Getenv("E2E_KEEP_LOGS") != ""

// dumpPodLogs logs the last lines of every container, ephemeral ones (the
// agents) included, of every pod in ns: a failure's diagnosis starts there.
func (c *cluster) dumpPodLogs(t *testing.T, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Logf("list pods of %s for their logs: %v", ns, err)
		return
	}
	tail := int64(200)
	for _, p := range pods.Items {
		var names []string
		for _, ct := range p.Spec.Containers {
			names = append(names, ct.Name)
		}
		for _, ct := range p.Spec.EphemeralContainers {
			names = append(names, ct.Name)
		}
		for _, name := range names {
			b, err := c.client.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: name, TailLines: &tail}).DoRaw(ctx)
			if err != nil {
				t.Logf("--- logs of %s/%s -c %s: %v", ns, p.Name, name, err)
				continue
			}
			saveLog(t, fmt.Sprintf("%s_%s_%s", ns, p.Name, name), b)
		}
	}
}

// saveLog keeps a failed test's log (a pod's, the daemon's) in
// bin/e2e-logs/<test>/<name>.log and names the file in the test's output,
// which stays short enough that the failure itself is what CI shows last.
func saveLog(t *testing.T, name string, b []byte) {
	dir := filepath.Join(repoRoot, "bin", "e2e-logs", strings.ReplaceAll(t.Name(), "/", "_"))
	path := filepath.Join(dir, name+".log")
	err := os.MkdirAll(dir, 0o755)
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		t.Logf("--- %s: %v", name, err)
		return
	}
	t.Logf("--- %s: %d bytes in %s", name, len(b), path)
}

// deployEcho runs the echo app as a Deployment with a Service of the same
// name (HTTP 8080, UDP 9090) and waits for its pods to be ready.
func (c *cluster) deployEcho(t *testing.T, ns, name string, replicas int32, specs ...func(*corev1.PodSpec)) {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	// A Secret-sourced variable, for the tests of --env-file.
	if _, err := c.client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-secret"},
		StringData: map[string]string{"token": "s3cr3t-" + name},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create secret: %v", err)
	}
	created := c.deploy(t, ns, name, replicas, corev1.Container{
		Image: echoImage,
		Env: []corev1.EnvVar{
			{Name: "ECHO_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: name + "-secret"}, Key: "token"}}},
			{Name: "GREETING", Value: "hello from $(POD_NAME)"},
		},
		Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
			{Name: "udp", ContainerPort: 9090, Protocol: corev1.ProtocolUDP},
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1,
		},
	}, specs...)
	// Ready pods are not yet a working Service: kube-proxy programs it on
	// its next sync, and until then the node's guard refuses connections to
	// the ClusterIP (seen: "connection refused" from a pod right after).
	// Wait for kube-proxy's rule (iptables mode, through iptables-nft).
	if replicas == 0 {
		return
	}
	rule := regexp.MustCompile(`ip daddr ` + regexp.QuoteMeta(created.Spec.ClusterIP) + `\s+tcp dport 8080 .*jump KUBE-SVC-`)
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		out, err := exec.CommandContext(ctx, "nft", "list", "chain", "ip", "nat", "KUBE-SERVICES").Output()
		return err == nil && rule.Match(out), nil
	})
	if err != nil {
		t.Fatalf("kube-proxy did not program service %s/%s (%s): %v", ns, name, created.Spec.ClusterIP, err)
	}
}

// deploy runs container (named name, with POD_NAME set) as a Deployment
// with a Service of the same name for each of its ports, waits for its pods
// to be ready, and returns the Service. Each of specs, if any, edits the pod
// template's spec (volumes, say) before the Deployment is created.
func (c *cluster) deploy(t *testing.T, ns, name string, replicas int32, container corev1.Container, specs ...func(*corev1.PodSpec)) *corev1.Service {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	labels := map[string]string{"app": name}
	container.Name, container.ImagePullPolicy = name, corev1.PullIfNotPresent
	container.Env = append([]corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}, container.Env...)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: new(int64(2)),
					Containers:                    []corev1.Container{container},
				},
			},
		},
	}
	for _, edit := range specs {
		edit(&dep.Spec.Template.Spec)
	}
	if _, err := c.client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment %s/%s: %v", ns, name, err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: labels},
	}
	for _, p := range container.Ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: p.Name, Port: p.ContainerPort, TargetPort: intstr.FromString(p.Name), Protocol: p.Protocol})
	}
	created, err := c.client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service %s/%s: %v", ns, name, err)
	}
	err = wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		d, err := c.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas == replicas && d.Status.UpdatedReplicas == replicas, nil
	})
	if err != nil {
		t.Fatalf("deployment %s/%s not ready: %v", ns, name, err)
	}
	return created
}

// runPod runs the echo image with args to completion and returns its log;
// with "--exec" first, args are the whole command instead.
func (c *cluster) runPod(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return c.podLog(t, ns, c.startPod(t, ns, args...), true)
}

// startPod starts the echo image with args, as runPod does, and returns the
// pod's name without waiting.
func (c *cluster) startPod(t *testing.T, ns string, args ...string) string {
	t.Helper()
	command := append([]string{"/echo"}, args...)
	if len(args) > 0 && args[0] == "--exec" {
		command = args[1:]
	}
	return c.startImage(t, ns, echoImage, command...)
}

// startImage starts a pod that runs command in image to completion, and
// returns its name without waiting.
func (c *cluster) startImage(t *testing.T, ns, image string, command ...string) string {
	t.Helper()
	pod, err := c.client.CoreV1().Pods(ns).Create(ctxFor(t, time.Minute), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "client-", Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "client", Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: command,
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create client pod: %v", err)
	}
	return pod.Name
}

// podLog returns the log of pod name; with done, once the pod has finished.
func (c *cluster) podLog(t *testing.T, ns, name string, done bool) string {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	if done {
		err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			p, err := c.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, nil
		})
		if err != nil {
			t.Fatalf("client pod %s/%s did not finish: %v", ns, name, err)
		}
	}
	out, err := c.client.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
	switch {
	case err != nil && done:
		t.Fatalf("logs of %s/%s: %v", ns, name, err)
	case err != nil:
		// DoRaw returns the error's body too: "container ... is waiting to
		// start" is not a log line (taken for one, it once made a test
		// think a client had been answered before it had even started).
		return ""
	}
	return string(out)
}

func (c *cluster) podsOf(t *testing.T, ns, app string) []corev1.Pod {
	t.Helper()
	pods, err := c.client.CoreV1().Pods(ns).List(ctxFor(t, 30*time.Second), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatalf("list pods of %s/%s: %v", ns, app, err)
	}
	return pods.Items
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// laptop is a network namespace that reaches only the API server.
type laptop struct {
	n    int
	name string
	// holder is the process holding a laptop's mount namespace as well
	// (newResolvedLaptop); 0 for a plain laptop.
	holder int
}

func newLaptop(t *testing.T, n int) *laptop {
	t.Helper()
	n += 60 * e2eSlot()
	out, err := exec.Command(filepath.Join(kindDir, "laptop.sh"), "up", fmt.Sprint(n)).CombinedOutput()
	if err != nil {
		t.Fatalf("laptop %d: %v\n%s", n, err, out)
	}
	l := &laptop{n: n, name: strings.TrimSpace(string(out))}
	t.Cleanup(func() { _ = exec.Command(filepath.Join(kindDir, "laptop.sh"), "down", fmt.Sprint(n)).Run() })
	return l
}

// run runs a command inside the laptop and returns its combined output.
func (l *laptop) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.name}, args...)...)
	if l.holder != 0 {
		cmd = exec.CommandContext(ctx, "nsenter", append([]string{"-t", fmt.Sprint(l.holder), "-m", "-n", "--"}, args...)...)
		cmd.Dir = "/"
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// curl fetches url from inside the laptop with a short time limit.
func (l *laptop) curl(ctx context.Context, url string, extra ...string) (string, error) {
	args := append([]string{"curl", "-sS", "--max-time", "3", url}, extra...)
	return l.run(ctx, args...)
}
