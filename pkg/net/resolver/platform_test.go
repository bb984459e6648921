package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeBus records systemd-resolved calls.
type fakeBus struct {
	calls  []string
	failOn string
}

func (b *fakeBus) rec(method string, format string, args ...any) error {
	b.calls = append(b.calls, method+" "+fmt.Sprintf(format, args...))
	if method == b.failOn {
		return errors.New("access denied")
	}
	return nil
}

func (b *fakeBus) SetLinkDNS(_ context.Context, i int, s []netip.Addr) error {
	return b.rec("SetLinkDNS", "%d %v", i, s)
}
func (b *fakeBus) SetLinkDomains(_ context.Context, i int, d []LinkDomain) error {
	return b.rec("SetLinkDomains", "%d %v", i, d)
}
func (b *fakeBus) SetLinkDefaultRoute(_ context.Context, i int, e bool) error {
	return b.rec("SetLinkDefaultRoute", "%d %v", i, e)
}
func (b *fakeBus) SetLinkDNSSEC(_ context.Context, i int, m string) error {
	return b.rec("SetLinkDNSSEC", "%d %s", i, m)
}
func (b *fakeBus) RevertLink(_ context.Context, i int) error { return b.rec("RevertLink", "%d", i) }

func newTestResolved(t *testing.T, bus *fakeBus, links map[string]int) (*Resolved, Options) {
	opts := Options{Root: t.TempDir()}
	r := NewResolved(bus, opts)
	r.linkIndex = func(name string) (int, error) {
		if i, ok := links[name]; ok {
			return i, nil
		}
		return 0, fmt.Errorf("no such device %s", name)
	}
	return r, opts
}

func TestResolved(t *testing.T) {
	ctx := context.Background()
	links := map[string]int{"tele0": 7}
	bus := &fakeBus{}
	r, _ := newTestResolved(t, bus, links)
	if err := r.Apply(ctx, testCfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := []string{
		"SetLinkDNS 7 [100.64.0.53]",
		"SetLinkDomains 7 [{demo.svc.cluster.local false} {svc.cluster.local false} {cluster.local false} {demo true}]",
		"SetLinkDefaultRoute 7 false",
		"SetLinkDNSSEC 7 no",
	}
	if !slices.Equal(bus.calls, want) {
		t.Errorf("Apply calls\n%s\nwant\n%s", strings.Join(bus.calls, "\n"), strings.Join(want, "\n"))
	}

	// Restore in another process finds the link from the state file.
	bus.calls = nil
	r2, _ := newTestResolved(t, bus, links)
	r2.statePath = r.statePath
	if err := r2.Restore(ctx); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if want := []string{"RevertLink 7"}; !slices.Equal(bus.calls, want) {
		t.Errorf("Restore calls %q, want %q", bus.calls, want)
	}
	bus.calls = nil
	if err := r2.Restore(ctx); err != nil || len(bus.calls) != 0 {
		t.Errorf("second Restore = %v with calls %q, want nothing", err, bus.calls)
	}
}

// A second Apply on the same link (new routing domains while connected)
// replaces the settings without reverting the link first.
func TestResolvedUpdateInPlace(t *testing.T) {
	ctx := context.Background()
	bus := &fakeBus{}
	r, _ := newTestResolved(t, bus, map[string]int{"tele0": 7})
	if err := r.Apply(ctx, testCfg); err != nil {
		t.Fatal(err)
	}
	bus.calls = nil
	cfg := testCfg
	cfg.Domains = []string{"demo", "other"}
	if err := r.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(bus.calls, "RevertLink 7") {
		t.Errorf("update reverted the link: %q", bus.calls)
	}
	if !slices.Contains(bus.calls, "SetLinkDomains 7 [{demo.svc.cluster.local false} {svc.cluster.local false} {cluster.local false} {demo true} {other true}]") {
		t.Errorf("update calls %q", bus.calls)
	}
	// A failed update leaves the running session's settings, not none.
	bus.calls, bus.failOn = nil, "SetLinkDomains"
	if err := r.Apply(ctx, cfg); err == nil {
		t.Fatal("failed update returned nil")
	}
	if slices.Contains(bus.calls, "RevertLink 7") {
		t.Errorf("a failed update reverted the link: %q", bus.calls)
	}
}

func TestResolvedDeviceGoneOrReused(t *testing.T) {
	ctx := context.Background()
	links := map[string]int{"tele0": 7}
	bus := &fakeBus{}
	r, _ := newTestResolved(t, bus, links)
	if err := r.Apply(ctx, testCfg); err != nil {
		t.Fatal(err)
	}
	links["tele0"] = 9 // the device was recreated: index 7 is not ours
	bus.calls = nil
	if err := r.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if len(bus.calls) != 0 {
		t.Errorf("Restore reverted a link that is not ours: %q", bus.calls)
	}
	if _, err := os.Stat(r.statePath); !os.IsNotExist(err) {
		t.Errorf("state file left behind: %v", err)
	}
}

func TestResolvedFailureReverts(t *testing.T) {
	bus := &fakeBus{failOn: "SetLinkDomains"}
	r, _ := newTestResolved(t, bus, map[string]int{"tele0": 7})
	err := r.Apply(context.Background(), testCfg)
	if err == nil || !strings.Contains(err.Error(), "SetLinkDomains") {
		t.Fatalf("Apply = %v, want a SetLinkDomains error", err)
	}
	if last := bus.calls[len(bus.calls)-1]; last != "RevertLink 7" {
		t.Errorf("failed Apply did not revert the link; calls %q", bus.calls)
	}
	// DNSSEC is best effort.
	bus = &fakeBus{failOn: "SetLinkDNSSEC"}
	r, _ = newTestResolved(t, bus, map[string]int{"tele0": 7})
	if err := r.Apply(context.Background(), testCfg); err != nil {
		t.Errorf("Apply with SetLinkDNSSEC failing = %v, want nil", err)
	}
}

func TestDetectLinux(t *testing.T) {
	tests := []struct {
		name     string
		runDir   bool
		resolv   string
		nsswitch string
		onBus    bool
		wantMode string
	}{
		{"resolved stub", true, "nameserver 127.0.0.53\n", "", true, "systemd-resolved"},
		{"resolved via nss-resolve", true, "nameserver 10.0.0.1\n", "hosts: mymachines resolve [!UNAVAIL=return] files dns\n", true, "systemd-resolved"},
		{"resolved not on the bus", true, "nameserver 127.0.0.53\n", "", false, "resolv.conf"},
		{"resolved runs, resolv.conf elsewhere (netns)", true, "nameserver 10.0.0.1\n", "hosts: files dns\n", true, "resolv.conf"},
		{"no resolved", false, "nameserver 127.0.0.53\n", "", true, "resolv.conf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			must := func(err error) {
				if err != nil {
					t.Fatal(err)
				}
			}
			must(os.MkdirAll(filepath.Join(root, "etc"), 0o755))
			must(os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte(tt.resolv), 0o644))
			if tt.nsswitch != "" {
				must(os.WriteFile(filepath.Join(root, "etc/nsswitch.conf"), []byte(tt.nsswitch), 0o644))
			}
			if tt.runDir {
				must(os.MkdirAll(filepath.Join(root, "run/systemd/resolve"), 0o755))
			}
			c := detectLinux(context.Background(), Options{Root: root}, func(context.Context) (ResolvedLink, bool) {
				return &fakeBus{}, tt.onBus
			})
			if c.Mode() != tt.wantMode {
				t.Errorf("mode %s, want %s", c.Mode(), tt.wantMode)
			}
		})
	}
}

func TestNRPTScripts(t *testing.T) {
	apply := NRPTApplyScript(testCfg)
	wantApply := []string{
		"$ErrorActionPreference = 'Stop'",
		"Get-DnsClientNrptRule | Where-Object { $_.Comment -eq 'kubectl-tele' } | Remove-DnsClientNrptRule -Force",
		"Add-DnsClientNrptRule -Namespace '.cluster.local','.demo','.demo.svc.cluster.local','.svc.cluster.local' -NameServers '100.64.0.53' -Comment 'kubectl-tele'",
		"Set-DnsClientServerAddress -InterfaceAlias 'tele0' -ServerAddresses '100.64.0.53'",
		"Set-DnsClient -InterfaceAlias 'tele0' -ConnectionSpecificSuffix 'demo.svc.cluster.local' -RegisterThisConnectionsAddress $false",
		"Clear-DnsClientCache",
	}
	if got := strings.Split(apply, "\n"); !slices.Equal(got, wantApply) {
		t.Errorf("apply script\n%s\nwant\n%s", apply, strings.Join(wantApply, "\n"))
	}
	tests := []struct {
		device string
		want   []string
	}{
		{"", []string{
			"$ErrorActionPreference = 'Stop'",
			"Get-DnsClientNrptRule | Where-Object { $_.Comment -eq 'kubectl-tele' } | Remove-DnsClientNrptRule -Force",
			"Clear-DnsClientCache",
		}},
		{"tele0", []string{
			"$ErrorActionPreference = 'Stop'",
			"Get-DnsClientNrptRule | Where-Object { $_.Comment -eq 'kubectl-tele' } | Remove-DnsClientNrptRule -Force",
			"Set-DnsClientServerAddress -InterfaceAlias 'tele0' -ResetServerAddresses -ErrorAction SilentlyContinue",
			"Clear-DnsClientCache",
		}},
	}
	for _, tt := range tests {
		if got := strings.Split(NRPTRestoreScript(tt.device), "\n"); !slices.Equal(got, tt.want) {
			t.Errorf("restore script for %q\n%s\nwant\n%s", tt.device, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
	if got := psQuote("it's"); got != "'it''s'" {
		t.Errorf("psQuote = %s", got)
	}
}

func TestNRPTRuns(t *testing.T) {
	var scripts []string
	run := func(_ context.Context, s string) error { scripts = append(scripts, s); return nil }
	n := NewNRPT(run, Options{})
	ctx := context.Background()
	if err := n.Apply(ctx, testCfg); err != nil {
		t.Fatal(err)
	}
	if err := n.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if len(scripts) != 2 || scripts[0] != NRPTApplyScript(testCfg) || scripts[1] != NRPTRestoreScript("tele0") {
		t.Errorf("ran %q", scripts)
	}
	bad := testCfg
	bad.Device = "tele0'; Remove-Item C:\\"
	if err := n.Apply(ctx, bad); !errors.Is(err, errInvalidConfig) {
		t.Errorf("Apply with a hostile device name = %v", err)
	}
}
