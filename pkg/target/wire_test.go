package target

import (
	"testing"

	"google.golang.org/protobuf/proto"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// TestInterceptTarget: what the manager is sent is the workload's own
// selector (a bare pod by name, not by its labels, which its siblings may
// share) and each Service port with its targetPort as the Service spells it.
func TestInterceptTarget(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "echo"},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"web"}}}}
	deploy, err := workloadFromObject(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: "ns"},
		Spec: appsv1.DeploymentSpec{Selector: sel}})
	if err != nil {
		t.Fatal(err)
	}
	pod, err := workloadFromObject(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: "ns", Labels: map[string]string{"app": "echo"}}})
	if err != nil {
		t.Fatal(err)
	}
	ports := Target{Container: "echo", Port: 8080, ServicePorts: []ServicePort{
		{Service: "web", Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
		{Service: "web", Name: "direct", Port: 8080, TargetPort: intstr.FromInt32(8080)},
	}}
	refs := []*teleproto.ServicePortRef{
		{Service: "web", Name: "http", Port: 80, TargetPort: "http"},
		{Service: "web", Name: "direct", Port: 8080, TargetPort: "8080"},
	}
	for _, tc := range []struct {
		name string
		w    *Workload
		want *teleproto.InterceptTarget
	}{
		{"deployment", deploy, &teleproto.InterceptTarget{ServicePorts: refs, Pods: &teleproto.InterceptTarget_Selector{Selector: &teleproto.LabelSelector{
			MatchLabels: map[string]string{"app": "echo"},
			MatchExpressions: []*teleproto.LabelSelectorRequirement{
				{Key: "tier", Operator: teleproto.SelectorOperator_SELECTOR_OPERATOR_IN, Values: []string{"web"}}},
		}}}},
		{"bare pod", pod, &teleproto.InterceptTarget{ServicePorts: refs, Pods: &teleproto.InterceptTarget_PodName{PodName: "solo"}}},
	} {
		got, err := tc.w.InterceptTarget(ports)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !proto.Equal(got, tc.want) {
			t.Errorf("%s:\n got %v\nwant %v", tc.name, got, tc.want)
		}
	}
}
