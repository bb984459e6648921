package teleproto

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestLabelSelectorRoundTrip: a workload's spec.selector crosses the wire
// into the selector the API server's own conversion makes of it, every
// operator included; what the API would refuse is refused.
func TestLabelSelectorRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		ls   *metav1.LabelSelector
		err  string
	}{
		{"labels", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "echo", "tier": "web"}}, ""},
		{"every operator", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "echo"}, MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "env", Operator: metav1.LabelSelectorOpIn, Values: []string{"dev", "test"}},
			{Key: "shard", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"0"}},
			{Key: "canary", Operator: metav1.LabelSelectorOpDoesNotExist},
			{Key: "example.com/team", Operator: metav1.LabelSelectorOpExists},
		}}, ""},
		{"unknown operator", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}, `unknown operator "Near"`},
		{"nil", nil, "no label selector"},
	} {
		wire, err := LabelSelectorFrom(tc.ls)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := wire.Selector()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want, _ := metav1.LabelSelectorAsSelector(tc.ls)
		if got.String() != want.String() {
			t.Errorf("%s: %q, want %q", tc.name, got, want)
		}
	}
}
