package state

import (
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// PodSet is the pods an intercept covers, as the laptop resolved them
// (InterceptTarget.pods): those a workload's selector selects, or one pod
// by name.
type PodSet struct {
	Selector labels.Selector // nil: the pod named Name alone
	Name     string
}

// ErrNoTarget: the request has no InterceptTarget.
var ErrNoTarget = errors.New("no target")

// PodSetOf reads the pods of a request's target.
func PodSetOf(t *teleproto.InterceptTarget) (PodSet, error) {
	switch p := t.GetPods().(type) {
	case *teleproto.InterceptTarget_Selector:
		sel, err := p.Selector.Selector()
		if err != nil {
			return PodSet{}, fmt.Errorf("the workload's selector: %w", err)
		}
		return PodSet{Selector: sel}, nil
	case *teleproto.InterceptTarget_PodName:
		if p.PodName == "" {
			return PodSet{}, errors.New("an empty pod name")
		}
		return PodSet{Name: p.PodName}, nil
	case nil:
		if t == nil {
			return PodSet{}, ErrNoTarget
		}
		return PodSet{}, errors.New("the target names no pods")
	}
	return PodSet{}, fmt.Errorf("a target of unknown kind %T", t.GetPods())
}

// Has reports whether pod, by its name and labels, is in p.
func (p PodSet) Has(pod *corev1.Pod) bool {
	if p.Selector == nil {
		return p.Name != "" && pod.Name == p.Name
	}
	return p.Selector.Matches(labels.Set(pod.Labels))
}

func (p PodSet) String() string {
	if p.Selector == nil {
		return "pod " + p.Name
	}
	return p.Selector.String()
}
