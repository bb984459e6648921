package state

import (
	"strings"
	"testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// TestPodSetOf: the manager takes the pods as the laptop resolved them: a
// workload's selector selects its pods, a bare pod is itself alone (not its
// siblings with the same labels); a target that names no pods, or would
// name every pod, is refused, and a request without one is told apart
// (ErrNoTarget).
func TestPodSetOf(t *testing.T) {
	echo := pod("echo-1", map[string]string{"app": "echo", "tier": "web"})
	solo := pod("solo", map[string]string{"app": "echo"})
	other := pod("other", map[string]string{"app": "other"})
	selector := func(ls *teleproto.LabelSelector) *teleproto.InterceptTarget {
		return &teleproto.InterceptTarget{Pods: &teleproto.InterceptTarget_Selector{Selector: ls}}
	}
	expr := func(key string, op teleproto.SelectorOperator, values ...string) *teleproto.LabelSelectorRequirement {
		return &teleproto.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
	}
	for _, tc := range []struct {
		name              string
		target            *teleproto.InterceptTarget
		echo, solo, other bool
		str               string // "" for an error
		err               string // "" ok; ErrNoTarget's text for none
	}{
		{"match labels", selector(&teleproto.LabelSelector{MatchLabels: map[string]string{"app": "echo"}}), true, true, false, "app=echo", ""},
		{"match expressions", selector(&teleproto.LabelSelector{MatchExpressions: []*teleproto.LabelSelectorRequirement{
			expr("app", teleproto.SelectorOperator_SELECTOR_OPERATOR_IN, "echo", "x"),
			expr("tier", teleproto.SelectorOperator_SELECTOR_OPERATOR_EXISTS)}}), true, false, false, "app in (echo,x),tier", ""},
		{"not in and does not exist", selector(&teleproto.LabelSelector{MatchExpressions: []*teleproto.LabelSelectorRequirement{
			expr("app", teleproto.SelectorOperator_SELECTOR_OPERATOR_NOT_IN, "other"),
			expr("tier", teleproto.SelectorOperator_SELECTOR_OPERATOR_DOES_NOT_EXIST)}}), false, true, false, "app notin (other),!tier", ""},
		{"a bare pod", &teleproto.InterceptTarget{Pods: &teleproto.InterceptTarget_PodName{PodName: "solo"}}, false, true, false, "pod solo", ""},
		{"no target", nil, false, false, false, "", ErrNoTarget.Error()},
		{"no pods", &teleproto.InterceptTarget{}, false, false, false, "", "names no pods"},
		{"empty pod name", &teleproto.InterceptTarget{Pods: &teleproto.InterceptTarget_PodName{}}, false, false, false, "", "empty pod name"},
		{"empty selector", selector(&teleproto.LabelSelector{}), false, false, false, "", "every pod"},
		{"unknown operator", selector(&teleproto.LabelSelector{MatchExpressions: []*teleproto.LabelSelectorRequirement{expr("app", 9, "echo")}}), false, false, false, "", "operator"},
		{"In without values", selector(&teleproto.LabelSelector{MatchExpressions: []*teleproto.LabelSelectorRequirement{
			expr("app", teleproto.SelectorOperator_SELECTOR_OPERATOR_IN)}}), false, false, false, "", "values"},
		{"bad label key", selector(&teleproto.LabelSelector{MatchLabels: map[string]string{"a b": "c"}}), false, false, false, "", "name part"},
	} {
		got, err := PodSetOf(tc.target)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got.Has(echo) != tc.echo || got.Has(solo) != tc.solo || got.Has(other) != tc.other {
			t.Errorf("%s (%s): has echo-1 %v, solo %v, other %v; want %v, %v, %v", tc.name, got,
				got.Has(echo), got.Has(solo), got.Has(other), tc.echo, tc.solo, tc.other)
		}
		if got.String() != tc.str {
			t.Errorf("%s: %q, want %q", tc.name, got.String(), tc.str)
		}
	}
	if (PodSet{}).Has(pod("", nil)) {
		t.Errorf("an empty PodSet has a pod without a name")
	}
}
