package target

import (
	"fmt"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// InterceptTarget is w and its port t as CreateInterceptRequest.target
// carries them to the manager, which uses them as given: the workload is
// resolved once, here, with the user's credentials.
func (w *Workload) InterceptTarget(t Target) (*teleproto.InterceptTarget, error) {
	out := &teleproto.InterceptTarget{}
	if w.Kind == "Pod" {
		out.Pods = &teleproto.InterceptTarget_PodName{PodName: w.Name}
	} else {
		sel, err := teleproto.LabelSelectorFrom(w.LabelSelector)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w, err)
		}
		out.Pods = &teleproto.InterceptTarget_Selector{Selector: sel}
	}
	for _, sp := range t.ServicePorts {
		out.ServicePorts = append(out.ServicePorts, &teleproto.ServicePortRef{
			Service: sp.Service, Name: sp.Name, Port: uint32(sp.Port), TargetPort: sp.TargetPort.String(),
		})
	}
	return out, nil
}
