package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	k8stesting "k8s.io/client-go/testing"
	testclock "k8s.io/utils/clock/testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/discovery"
)

// A refresh during an API server outage keeps the last good cluster info;
// the first refresh after it replaces it (issue 22, item 4: laptops
// connecting during the 5 minutes after a blip got no Service CIDR).
// On synctest's clock, so that Run's refresher waiting on the fake clock
// shows at synctest.Wait rather than by polling.
func TestRefreshKeepsLastGoodClusterInfo(t *testing.T) {
	synctest.Test(t, testRefreshKeepsLastGoodClusterInfo)
}

func testRefreshKeepsLastGoodClusterInfo(t *testing.T) {
	cfg := testConfig(t)
	cfg.RefreshInterval = 5 * time.Minute
	c := newFakeClientset()
	var down atomic.Bool
	var serviceCIDR atomic.Value
	serviceCIDR.Store("10.96.0.0/16")
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	c.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if down.Load() {
			return true, nil, refused
		}
		if a.GetVerb() == "create" && a.GetResource().Resource == "services" {
			// The dry-run probe, refused as kube-apiserver refuses it.
			ip := a.(k8stesting.CreateAction).GetObject().(*corev1.Service).Spec.ClusterIP
			msg := fmt.Sprintf("failed to allocate IP %s: the provided IP (%s) is not in the valid range. The range of valid IPs is %s", ip, ip, serviceCIDR.Load())
			return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, "probe",
				field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs"), []string{ip}, msg)})
		}
		return false, nil, nil
	})
	cfg.Client = c
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := testclock.NewFakeClock(time.Now())
	s.clock = clk
	refreshed := make(chan error)
	s.refreshed = func(err error) { refreshed <- err }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		s.Close()
	})

	serviceCIDRs := func() []string {
		t.Helper()
		info, err := s.clusterInfo(ctx)
		if err != nil {
			t.Fatalf("cluster info: %v", err)
		}
		return info.GetServiceCidrs()
	}
	// tick steps the fake clock past one refresh, once Run's ticker is
	// waiting, and returns that refresh's outcome.
	tick := func() error {
		t.Helper()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Run returned")
		default:
		}
		if !clk.HasWaiters() {
			t.Fatal("Run's refresher does not wait on the clock")
		}
		clk.Step(cfg.RefreshInterval)
		select {
		case err := <-refreshed:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("no refresh after a step of the refresh interval")
			return nil
		}
	}

	if got := serviceCIDRs(); !slices.Equal(got, []string{"10.96.0.0/16"}) {
		t.Fatalf("service CIDRs before the outage = %v, want [10.96.0.0/16]", got)
	}
	down.Store(true)
	if err := tick(); !errors.Is(err, discovery.ErrUnanswered) {
		t.Fatalf("refresh during the outage: %v, want ErrUnanswered", err)
	}
	if got := serviceCIDRs(); !slices.Equal(got, []string{"10.96.0.0/16"}) {
		t.Errorf("service CIDRs after a refresh during the outage = %v, want the last good [10.96.0.0/16]", got)
	}
	// Back, with a range that changed meanwhile: a successful read replaces.
	serviceCIDR.Store("10.97.0.0/16")
	down.Store(false)
	if err := tick(); err != nil {
		t.Fatalf("refresh after the outage: %v", err)
	}
	if got := serviceCIDRs(); !slices.Equal(got, []string{"10.97.0.0/16"}) {
		t.Errorf("service CIDRs after the outage = %v, want the new [10.97.0.0/16]", got)
	}
}
