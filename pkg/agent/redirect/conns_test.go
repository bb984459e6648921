//go:build linux && root

package redirect

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// Connections the app accepted before the redirect bypass it: Bypassing
// counts them (v4 and v6, the app listening on both), not the agent's own
// from loopback, and resets the idle ones only; their clients see a reset
// and reconnect through the redirect.
func TestBypassingCountsAndResetsIdle(t *testing.T) {
	n := newTestNet(t)
	serve(t, n, appPort, "app")
	serve(t, n, agentPort, "agent")
	r := openIn(t, n)

	var idle, busy []string
	conns := map[string]func() (string, error){}
	for _, addr := range []netip.AddrPort{netip.AddrPortFrom(podV4, appPort), netip.AddrPortFrom(podV6, appPort)} {
		for _, kind := range []string{"idle", "busy"} {
			c, err := dial(n.out, addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if got, err := ask(c); err != nil || got != "app" {
				t.Fatalf("before the redirect: %q %v", got, err)
			}
			name := kind + " " + addr.String()
			conns[name] = func() (string, error) { return ask(c) }
			if kind == "idle" {
				idle = append(idle, name)
			} else {
				busy = append(busy, name)
			}
		}
	}
	// The agent's own connection to the app, from loopback.
	own, err := dial(n.pod, netip.MustParseAddrPort("127.0.0.1:8080"))
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if _, err := ask(own); err != nil {
		t.Fatal(err)
	}

	if err := r.Set([]Rule{{Port: appPort, ToPort: agentPort}}); err != nil {
		t.Fatal(err)
	}
	got, err := r.Bypassing(appPort, 0)
	if err != nil || got != (Conns{Bypassing: 4}) {
		t.Fatalf("Bypassing(%d, 0) = %+v, %v; want 4 found, none reset", appPort, got, err)
	}
	if got, err := r.Bypassing(agentPort, 0); err != nil || got.Bypassing != 0 {
		t.Errorf("Bypassing(%d, 0) = %+v, %v; want none", agentPort, got, err)
	}

	// Idle means quiet for resetIdle; the busy ones speak just before. A
	// second apart, so a loaded machine cannot blur the two.
	const resetIdle = time.Second
	// sleepcheck:allow the kernel's clock: quiet is tcp_info's
	// last_data_recv, which only passing time changes.
	time.Sleep(resetIdle + 500*time.Millisecond)
	for _, name := range busy {
		if _, err := conns[name](); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	got, err = r.Bypassing(appPort, resetIdle)
	if err != nil || got != (Conns{Bypassing: 4, Reset: 2}) {
		t.Fatalf("Bypassing(%d, %s) = %+v, %v; want 4 found, the 2 idle reset", appPort, resetIdle, got, err)
	}
	for _, name := range idle {
		if who, err := conns[name](); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s after reset: %q, %v; want ECONNRESET", name, who, err)
		}
	}
	for _, name := range busy {
		if who, err := conns[name](); err != nil || who != "app" {
			t.Errorf("%s: %q, %v; want it still on the app", name, who, err)
		}
	}
	if who, err := ask(own); err != nil || who != "app" {
		t.Errorf("the agent's own connection: %q, %v", who, err)
	}
	if got, err := r.Bypassing(appPort, 0); err != nil || got.Bypassing != 2 {
		t.Errorf("after the reset: %+v, %v; want the 2 busy ones", got, err)
	}
	check(t, n, "agent", "app") // new connections take the redirect
}

// parseDiagMsg reads what the kernel sends; it must never panic on a short
// or odd message (another kernel version's layout, a truncated attribute).
func FuzzParseDiagMsg(f *testing.F) {
	msg := make([]byte, inetDiagMsgLen)
	msg[0] = 10 // AF_INET6
	f.Add(msg)
	f.Add(append(append([]byte{}, msg...), 8, 0, inetDiagInfo, 0, 1, 2, 3, 4))
	f.Add(append(append([]byte{}, msg...), 64, 0, inetDiagInfo, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseDiagMsg(b)
		if err == nil && s.info && len(b) < inetDiagMsgLen+4+tcpiLastDataRecv+4 {
			t.Errorf("tcp_info read from %d bytes", len(b))
		}
	})
}
