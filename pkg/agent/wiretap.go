package agent

import (
	"context"
	"sort"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// wiretapReportEvery is how often the agent reports its wiretaps' counters
// to the manager, for kubectl tele list, while it has any.
var wiretapReportEvery = time.Second // a var for tests

// wiretapCounters returns the counters of every wiretap the agent's
// routers run, by intercept id.
func (a *Agent) wiretapCounters() []*teleproto.WiretapCounters {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*teleproto.WiretapCounters
	for _, p := range a.ports {
		for id, c := range p.router.WiretapStats() {
			out = append(out, &teleproto.WiretapCounters{Intercept: id, Sent: c.Sent, Dropped: c.Dropped})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Intercept < out[j].Intercept })
	return out
}

// reportWiretaps sends the wiretaps' counters while there are any and they
// changed, until ctx ends or a send fails (the stream is then done).
func (a *Agent) reportWiretaps(ctx context.Context, send func(*teleproto.AgentReport) error) {
	t := time.NewTicker(wiretapReportEvery)
	defer t.Stop()
	last := map[string]*teleproto.WiretapCounters{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cs := a.wiretapCounters()
		changed := len(cs) != len(last)
		for _, c := range cs {
			if l := last[c.GetIntercept()]; l == nil || l.GetSent() != c.GetSent() || l.GetDropped() != c.GetDropped() {
				changed = true
			}
		}
		if !changed || len(cs) == 0 {
			continue
		}
		if err := send(&teleproto.AgentReport{Wiretaps: cs}); err != nil {
			return
		}
		clear(last)
		for _, c := range cs {
			last[c.GetIntercept()] = c
		}
	}
}
