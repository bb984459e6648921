package agent

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/agent/redirect"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// TestWiretapRoute: a wiretap route reaches the port's router as a
// wiretap, its counters are reported while it runs and only when they
// change, and its port stays redirected when it leaves, as after header
// routes.
func TestWiretapRoute(t *testing.T) {
	a, red := newTestAgent(t)
	web := freePort(t)
	tap := &teleproto.AgentRoute{Intercept: "tap", Port: 8080, AgentPort: web, Mech: teleproto.Mechanism_MECHANISM_NFTABLES, Kind: teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP}
	if _, err := a.apply([]*teleproto.AgentRoute{tap}); err != nil {
		t.Fatal(err)
	}
	got := a.wiretapCounters()
	if len(got) != 1 || got[0].GetIntercept() != "tap" {
		t.Fatalf("counters %v, want the wiretap's", got)
	}

	old := wiretapReportEvery
	wiretapReportEvery = 10 * time.Millisecond
	t.Cleanup(func() { wiretapReportEvery = old })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var reports []*teleproto.AgentReport
	a.reportWiretaps(ctx, func(r *teleproto.AgentReport) error { reports = append(reports, r); return nil })
	if len(reports) != 1 || len(reports[0].GetWiretaps()) != 1 || reports[0].GetApplied() != 0 {
		t.Errorf("reports %v, want one with the wiretap's counters (unchanged since)", reports)
	}

	if _, err := a.apply(nil); err != nil {
		t.Fatal(err)
	}
	if want := []redirect.Rule{{Port: 8080, ToPort: uint16(web)}}; !slices.Equal(red.rules, want) {
		t.Errorf("after the wiretap left: rules %v, want %v", red.rules, want)
	}
	if got := a.wiretapCounters(); len(got) != 0 {
		t.Errorf("counters after the wiretap left: %v", got)
	}
}
