//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
)

// TestManagerSIGTERMRestoresService: a manager pod deleted with the default
// grace period (SIGTERM, then 5 s) puts back the Service its Service-mechanism
// intercept retargeted before it exits, so the app is reached directly again
// and nothing is left for uninstall. The daemon then reconnects and may
// intercept again, retargeting the Service anew: the test watches for the
// restore itself rather than reading the Service once.
func TestManagerSIGTERMRestoresService(t *testing.T) {
	c := newCluster(t)
	// Baseline Pod Security forbids the agent's NET_ADMIN: the Service mechanism.
	ns := c.namespace(t, "term", map[string]string{"pod-security.kubernetes.io/enforce": "baseline"})
	c.deployEcho(t, ns, "echo", 1)
	ctx := ctxFor(t, 5*time.Minute)
	l := newLaptop(t, 40)
	u := newTeleUser(t, 40, nil)
	dumpLogs(t, u)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })

	before, err := c.client.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	l.localServer(t, u, 7070, "LAPTOP-T")
	out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--port", "7070:8080", "--http-match", "x-dev=term")
	if err != nil {
		t.Fatalf("intercept: %v\n%s", err, out)
	}
	during, err := c.client.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sameTargetPorts(before, during) {
		t.Fatalf("intercept left Service echo's targetPort at %s: not the Service mechanism?\n%s",
			during.Spec.Ports[0].TargetPort.String(), out)
	}
	t.Logf("Service echo retargeted: %s -> %s", before.Spec.Ports[0].TargetPort.String(), during.Spec.Ports[0].TargetPort.String())

	pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + managerJob})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("manager pods: %d %v", len(pods.Items), err)
	}
	// Watch from the retargeted version, so that a restore followed at once
	// by the reconnected daemon's new retarget is still seen.
	w, err := c.client.CoreV1().Services(ns).Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", "echo").String(),
		ResourceVersion: during.ResourceVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// As kubectl delete pod or an eviction does: SIGTERM, then the grace period.
	if err := c.client.CoreV1().Pods(ns).Delete(ctx, pods.Items[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// A plain watch, not watchtools (which would need go.mod changes): 20 s
	// is short enough for one watch.
	err = func() error {
		for {
			select {
			case <-wctx.Done():
				return wctx.Err()
			case ev, ok := <-w.ResultChan():
				if !ok {
					return errors.New("the watch of Service echo closed")
				}
				if svc, isSvc := ev.Object.(*corev1.Service); isSvc && ev.Type == watch.Modified &&
					sameTargetPorts(before, svc) && !hasOriginalAnnotation(svc) {
					return nil
				}
			}
		}
	}()
	if err != nil {
		now, gerr := c.client.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
		state := fmt.Sprint(gerr)
		if gerr == nil {
			state = fmt.Sprintf("targetPort %s, annotations %v", now.Spec.Ports[0].TargetPort.String(), now.Annotations)
		}
		t.Fatalf("Service echo not restored to targetPort %s within 20 s of deleting the manager pod: %v (now %s)",
			before.Spec.Ports[0].TargetPort.String(), err, state)
	}
	t.Logf("Service echo restored %s after the manager pod was deleted", time.Since(start).Round(100*time.Millisecond))
}

// sameTargetPorts says whether a and b's ports have the same targetPorts.
func sameTargetPorts(a, b *corev1.Service) bool {
	if len(a.Spec.Ports) != len(b.Spec.Ports) {
		return false
	}
	for i := range a.Spec.Ports {
		if a.Spec.Ports[i].TargetPort != b.Spec.Ports[i].TargetPort {
			return false
		}
	}
	return true
}

// hasOriginalAnnotation says whether svc still records a targetPort to put back.
func hasOriginalAnnotation(svc *corev1.Service) bool {
	for _, p := range svc.Spec.Ports {
		key := objects.AnnotOriginalTargetPort + p.Name
		if p.Name == "" {
			key = objects.AnnotOriginalTargetPort + fmt.Sprint(p.Port)
		}
		if _, ok := svc.Annotations[key]; ok {
			return true
		}
	}
	return false
}
