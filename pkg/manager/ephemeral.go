package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// addEphemeralContainer adds c to pod as kubectl debug does: one strategic
// merge patch of the ephemeralcontainers subresource, made by diffing the
// pod with and without c, so that it also keeps the list's order (the
// newest agent is the last). The patch carries the resourceVersion the
// caller judged the pod by (it is left out of the "before" side so the diff
// holds it): two attaches that race add one agent, and the loser gets a
// Conflict and looks again.
func addEphemeralContainer(ctx context.Context, pods typedcorev1.PodInterface, pod *corev1.Pod, c corev1.EphemeralContainer) error {
	before := pod.DeepCopy()
	before.ResourceVersion = ""
	after := pod.DeepCopy()
	after.Spec.EphemeralContainers = append(after.Spec.EphemeralContainers, c)
	bj, err := json.Marshal(before)
	if err != nil {
		return fmt.Errorf("pod %s as JSON: %w", pod.Name, err)
	}
	aj, err := json.Marshal(after)
	if err != nil {
		return fmt.Errorf("pod %s with %s as JSON: %w", pod.Name, c.Name, err)
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(bj, aj, corev1.Pod{})
	if err != nil {
		return fmt.Errorf("patch of pod %s adding %s: %w", pod.Name, c.Name, err)
	}
	_, err = pods.Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "ephemeralcontainers")
	return err
}

// noEphemeralContainers tells, from its details, the 404 of an API server
// that lacks the ephemeralcontainers subresource from that of a pod that is
// gone: the API server names the missing pod in the Status's details, while
// an old server's Status has no name (kubectl debug's test) or is no Status
// at all but a plain 404 page, which client-go marks with an
// UnexpectedServerResponse cause.
func noEphemeralContainers(err error) bool {
	var serr apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &serr) {
		return false
	}
	d := serr.Status().Details
	if d == nil || d.Name == "" {
		return true
	}
	for _, c := range d.Causes {
		if c.Type == metav1.CauseTypeUnexpectedServerResponse {
			return true
		}
	}
	return false
}
