package manager

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// Wiretaps are intercepts of kind WIRETAP: their agents copy the matching
// requests to the laptop while the app answers them. They never conflict
// with other wiretaps or intercepts and are sent only to agents that said
// they can apply them (the others' pods are listed as uncovered), both as
// package state decides; their copy counters come from the agents' reports.

// interceptKind validates a requested kind; UNSPECIFIED, from laptops that
// predate kinds, is an intercept.
func interceptKind(k teleproto.InterceptKind) (teleproto.InterceptKind, error) {
	switch k {
	case teleproto.InterceptKind_INTERCEPT_KIND_UNSPECIFIED, teleproto.InterceptKind_INTERCEPT_KIND_INTERCEPT:
		return teleproto.InterceptKind_INTERCEPT_KIND_INTERCEPT, nil
	case teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP:
		return k, nil
	}
	return 0, status.Errorf(codes.InvalidArgument, "unknown intercept kind %v: this manager knows intercept and wiretap", k)
}

// noteWiretaps keeps the counters an agent reported; ac.mu is held. The
// counters are cumulative per wiretap, so the latest replaces the earlier.
func (ac *agentConn) noteWiretaps(cs []*teleproto.WiretapCounters) {
	if len(cs) == 0 {
		return
	}
	if ac.taps == nil {
		ac.taps = map[string]*teleproto.WiretapCounters{}
	}
	for _, c := range cs {
		ac.taps[c.GetIntercept()] = c
	}
}

// wiretapCopies sums, over the connected agents, the copies of the
// wiretap id sent and dropped.
func (s *Server) wiretapCopies(id string) (sent, dropped uint64) {
	return s.agents.wiretapCopies(id)
}
