package manager

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMissingPullSecrets(t *testing.T) {
	pod := func(secrets ...string) *corev1.Pod {
		p := &corev1.Pod{}
		for _, s := range secrets {
			p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
		}
		return p
	}
	tests := []struct {
		name    string
		pod     *corev1.Pod
		secrets []string
		want    []string
	}{
		{"no secret needed", pod(), nil, nil},
		{"pod has it", pod("other", "regcred"), []string{"regcred"}, nil},
		{"pod lacks it", pod("other"), []string{"regcred"}, []string{"regcred"}},
		{"pod lacks one of two", pod("a"), []string{"a", "b"}, []string{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := missingPullSecrets(tt.pod, tt.secrets)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("missingPullSecrets = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAgentPullFailure(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-1"}}
	pod.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{
		{Name: "tele-agent", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}},
		{Name: "tele-agent-2", Image: "reg.example/kubectl-tele:v1", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "ErrImagePull", Message: "401 Unauthorized "}}},
	}
	if got := agentPullFailure(pod, "tele-agent", nil); got != "" {
		t.Errorf("a terminated agent is no pull failure: %q", got)
	}
	got := agentPullFailure(pod, "tele-agent-2", []string{"regcred"})
	for _, want := range []string{"ns/web-1", "reg.example/kubectl-tele:v1", "ErrImagePull: 401 Unauthorized)", "imagePullSecrets (none)", "add regcred to the workload"} {
		if !strings.Contains(got, want) {
			t.Errorf("message %q lacks %q", got, want)
		}
	}
	pod.Status.EphemeralContainerStatuses[1].State.Waiting.Reason = "ContainerCreating"
	if got := agentPullFailure(pod, "tele-agent-2", nil); got != "" {
		t.Errorf("still creating is no failure: %q", got)
	}
}
