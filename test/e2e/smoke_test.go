//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// TestClusterSmoke checks that the local cluster does what the product relies
// on: DNS and Services, ephemeral containers, port-forward through client-go,
// Jobs; and that a laptop reaches none of it by itself.
func TestClusterSmoke(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "smoke", nil)
	c.deployEcho(t, ns, "echo", 1)
	pod := c.podsOf(t, ns, "echo")[0]

	t.Run("service by DNS name from a pod", func(t *testing.T) {
		out := c.runPod(t, ns, "get", "http://echo:8080/", fmt.Sprintf("http://echo.%s.svc.cluster.local:8080/", ns))
		if got := strings.Count(out, pod.Name+" HTTP/1.1"); got != 2 {
			t.Fatalf("want 2 answers from %s, got:\n%s", pod.Name, out)
		}
		out = c.runPod(t, ns, "udp", "echo:9090", "ping")
		if !strings.Contains(out, pod.Name+": ping") {
			t.Fatalf("UDP echo through the Service: %s", out)
		}
	})

	t.Run("ephemeral container through client-go", func(t *testing.T) {
		ctx := ctxFor(t, 2*time.Minute)
		p, err := c.client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{
			TargetContainerName: "echo",
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "smoke", Image: echoImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"/echo", "serve", "-http", ":8090", "-udp", ""},
			},
		})
		if _, err := c.client.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, pod.Name, p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("add ephemeral container: %v", err)
		}
		err = wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			p, err := c.client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, s := range p.Status.EphemeralContainerStatuses {
				if s.Name == "smoke" && s.State.Running != nil {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("ephemeral container not running: %v", err)
		}
		// It shares the pod's network namespace: the pod IP answers on its port.
		out := c.runPod(t, ns, "get", fmt.Sprintf("http://%s:8090/", pod.Status.PodIP))
		if !strings.Contains(out, "HTTP/1.1") {
			t.Fatalf("ephemeral container's server not reachable at the pod IP: %s", out)
		}
		after, err := c.client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if after.UID != pod.UID || after.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Fatalf("pod restarted or replaced: uid %s -> %s, restarts %d", pod.UID, after.UID, after.Status.ContainerStatuses[0].RestartCount)
		}
	})

	t.Run("port-forward through client-go", func(t *testing.T) {
		ctx := ctxFor(t, time.Minute)
		tr, upgrader, err := spdy.RoundTripperFor(c.config)
		if err != nil {
			t.Fatal(err)
		}
		u := c.client.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod.Name).SubResource("portforward").URL()
		dialer := spdy.NewDialer(upgrader, &http.Client{Transport: tr}, "POST", u)
		stop, ready := make(chan struct{}), make(chan struct{})
		fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- fw.ForwardPorts() }()
		defer func() { close(stop); <-errc }()
		select {
		case <-ready:
		case err := <-errc:
			t.Fatalf("port-forward: %v", err)
		case <-ctx.Done():
			t.Fatal("port-forward not ready")
		}
		ports, _ := fw.GetPorts()
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/pf", ports[0].Local))
		if err != nil {
			t.Fatalf("GET through port-forward: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), pod.Name) {
			t.Fatalf("port-forward answer: %s", body)
		}
	})

	t.Run("job runs to completion", func(t *testing.T) {
		ctx := ctxFor(t, 2*time.Minute)
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: ns},
			Spec: batchv1.JobSpec{
				TTLSecondsAfterFinished: new(int32(1)),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "job", Image: echoImage, ImagePullPolicy: corev1.PullIfNotPresent,
						Command: []string{"/echo", "get", "http://echo:8080/"}}},
				}},
			},
		}
		if _, err := c.client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Completed, then removed by the TTL controller: what the manager's Job relies on.
		err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			_, err := c.client.BatchV1().Jobs(ns).Get(ctx, "smoke", metav1.GetOptions{})
			if err != nil {
				return ignoreNotFound(err) == nil, ignoreNotFound(err)
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("job not completed and removed by its TTL: %v", err)
		}
	})

	t.Run("a laptop reaches the API server and nothing else", func(t *testing.T) {
		ctx := ctxFor(t, time.Minute)
		l := newLaptop(t, 9)
		if out, err := l.curl(ctx, "https://10.201.0.1:6443/readyz", "-k", "-o", "/dev/null", "-w", "%{http_code}"); err != nil || out != "200" {
			t.Fatalf("laptop cannot reach the API server: %v %s", err, out)
		}
		svc, err := c.client.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range []string{pod.Status.PodIP, svc.Spec.ClusterIP} {
			if out, err := l.curl(ctx, fmt.Sprintf("http://%s:8080/", target)); err == nil {
				t.Errorf("laptop reached %s without kubectl-tele: %s", target, out)
			}
		}
		if out, err := l.curl(ctx, "http://echo."+ns+":8080/"); err == nil {
			t.Errorf("laptop resolved a cluster name without kubectl-tele: %s", out)
		}
	})

	t.Run("the guard catches a packet for an unassigned service IP", func(t *testing.T) {
		before := guardCount(t, "service-cidr-unassigned")
		d := net.Dialer{Timeout: 2 * time.Second}
		if conn, err := d.Dial("tcp", "10.96.254.254:80"); err == nil {
			conn.Close()
			t.Fatal("dial to an unassigned service IP succeeded")
		}
		if after := guardCount(t, "service-cidr-unassigned"); after <= before {
			t.Fatalf("guard counter did not move: %d -> %d", before, after)
		}
	})
}

// guardCount sums the packet counters of the host guard's rules with comment.
func guardCount(t *testing.T, comment string) int {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "inet", "tele_kind_guard").Output()
	if err != nil {
		t.Fatalf("nft list: %v", err)
	}
	total := 0
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, `comment "`+comment+`"`) {
			continue
		}
		var n int
		if i := strings.Index(line, "packets "); i >= 0 {
			fmt.Sscanf(line[i:], "packets %d", &n)
		}
		total += n
	}
	return total
}
