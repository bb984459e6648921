package teleproto

import (
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The selector operators, both ways: the only translation between
// metav1.LabelSelectorOperator and SelectorOperator.
var (
	operatorToProto = map[metav1.LabelSelectorOperator]SelectorOperator{
		metav1.LabelSelectorOpIn:           SelectorOperator_SELECTOR_OPERATOR_IN,
		metav1.LabelSelectorOpNotIn:        SelectorOperator_SELECTOR_OPERATOR_NOT_IN,
		metav1.LabelSelectorOpExists:       SelectorOperator_SELECTOR_OPERATOR_EXISTS,
		metav1.LabelSelectorOpDoesNotExist: SelectorOperator_SELECTOR_OPERATOR_DOES_NOT_EXIST,
	}
	operatorFromProto = func() map[SelectorOperator]metav1.LabelSelectorOperator {
		m := make(map[SelectorOperator]metav1.LabelSelectorOperator, len(operatorToProto))
		for k, v := range operatorToProto {
			m[v] = k
		}
		return m
	}()
)

// LabelSelectorFrom puts a workload's spec.selector on the wire. It fails
// on an operator the API does not define (the API server accepts none
// such, so only a hand-made object has one).
func LabelSelectorFrom(ls *metav1.LabelSelector) (*LabelSelector, error) {
	if ls == nil {
		return nil, errors.New("no label selector")
	}
	out := &LabelSelector{MatchLabels: ls.MatchLabels}
	for _, r := range ls.MatchExpressions {
		op, ok := operatorToProto[r.Operator]
		if !ok {
			return nil, fmt.Errorf("label selector requirement on %q: unknown operator %q", r.Key, r.Operator)
		}
		out.MatchExpressions = append(out.MatchExpressions, &LabelSelectorRequirement{Key: r.Key, Operator: op, Values: r.Values})
	}
	return out, nil
}

// Selector reads a selector from the wire, validated as the API server
// validates a workload's: metav1.LabelSelectorAsSelector. An empty
// selector is refused: it would select every pod of the namespace, which
// no workload's selector does.
func (x *LabelSelector) Selector() (labels.Selector, error) {
	ls := &metav1.LabelSelector{MatchLabels: x.GetMatchLabels()}
	for _, r := range x.GetMatchExpressions() {
		op, ok := operatorFromProto[r.GetOperator()]
		if !ok {
			return nil, fmt.Errorf("label selector requirement on %q: operator %v", r.GetKey(), r.GetOperator())
		}
		ls.MatchExpressions = append(ls.MatchExpressions, metav1.LabelSelectorRequirement{Key: r.GetKey(), Operator: op, Values: r.GetValues()})
	}
	if len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0 {
		return nil, errors.New("empty label selector: it would select every pod")
	}
	return metav1.LabelSelectorAsSelector(ls)
}
