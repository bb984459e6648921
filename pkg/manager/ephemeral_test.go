package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestNoEphemeralContainers(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"pod gone", apierrors.NewNotFound(pods, "web"), false},
		{"pod gone, wrapped", fmt.Errorf("add agent: %w", apierrors.NewNotFound(pods, "web")), false},
		{"no name in the details (kubectl debug's case)", apierrors.NewNotFound(pods, ""), true},
		{"a plain 404 page", apierrors.NewGenericServerResponse(404, "PATCH", pods, "web", "404 page not found", 0, true), true},
		{"no details", &apierrors.StatusError{ErrStatus: metav1.Status{Reason: metav1.StatusReasonNotFound, Code: 404}}, true},
		{"forbidden", apierrors.NewForbidden(pods, "web", errors.New("no")), false},
		{"not an API error", errors.New("EOF"), false},
	} {
		if got := noEphemeralContainers(tc.err); got != tc.want {
			t.Errorf("%s: noEphemeralContainers(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// The agent is added by one patch that appends it (the newest agent is the
// last) and is conditional on the resourceVersion it was decided on.
func TestAddEphemeralContainerPatch(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS, ResourceVersion: "42"}}
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "tele-agent"}}}
	client := fake.NewClientset(pod)
	var patch []byte
	client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "ephemeralcontainers" {
			patch = a.(k8stesting.PatchAction).GetPatch()
		}
		return false, nil, nil
	})
	c := corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "tele-agent-2", Image: "img"}}
	if err := addEphemeralContainer(context.Background(), client.CoreV1().Pods(testNS), pod, c); err != nil {
		t.Fatal(err)
	}
	var p struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Spec struct {
			Order []map[string]string         `json:"$setElementOrder/ephemeralContainers"`
			Added []corev1.EphemeralContainer `json:"ephemeralContainers"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(patch, &p); err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	if p.Metadata.ResourceVersion != "42" {
		t.Errorf("patch %s: resourceVersion %q, want 42", patch, p.Metadata.ResourceVersion)
	}
	if len(p.Spec.Added) != 1 || p.Spec.Added[0].Name != "tele-agent-2" || len(p.Spec.Order) != 2 || p.Spec.Order[1]["name"] != "tele-agent-2" {
		t.Errorf("patch %s: want tele-agent-2 added after tele-agent", patch)
	}
	got, err := client.CoreV1().Pods(testNS).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := newestAgent(got); n == nil || n.Name != "tele-agent-2" {
		t.Errorf("newest agent after the patch: %+v", n)
	}
}
