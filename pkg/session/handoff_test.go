package session

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kubectl-tele/kubectl-tele/pkg/net/device"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/helper"
)

// TestListenUnix: the daemon's sockets are its user's only; a stale socket
// file a dead daemon left is replaced, a live daemon's is not.
func TestListenUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	l, err := listenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v %v, want 0600", st.Mode(), err)
	}
	if _, err := listenUnix(path); err == nil || !strings.Contains(err.Error(), "a daemon already listens") {
		t.Errorf("second listener: %v, want refused", err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // the file stays, as a killed daemon leaves it
	l, err = listenUnix(path)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	l.Close()
}

// TestReceiveDeviceQuit: quit ends the wait for the helper's device at once,
// and the socket goes with it.
func TestReceiveDeviceQuit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "helper.sock")
	quit := make(chan struct{})
	done := make(chan error, 1)
	// Quit before the wait begins: the test cannot see when the socket
	// appears without polling for it, and the wait ends the same way
	// (quit sets the listener's deadline in the past).
	close(quit)
	go func() { _, _, err := receiveDevice(context.Background(), path, quit); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("receiveDevice returned no error on quit")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("quit did not end the wait")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left: %v", err)
	}
}

// TestHelperRequest: what the daemon asks of the helper, as the helper reads
// it from the plugin (the protojson status carries).
func TestHelperRequest(t *testing.T) {
	cfg := Config{Paths: Paths{RuntimeDir: "/tmp/kubectl-tele-1000"}}
	routes := []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16")}
	dc, err := chooseDevice("linux", cfg, routes, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := helperRequest(cfg, routes, netip.MustParseAddr("10.96.0.10"), []string{"ns.svc.cluster.local"}, []string{"cluster.local"}, dc)
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	dev, spec, rc, err := helper.Parse(b, 1000)
	if err != nil {
		t.Fatalf("the helper refuses %s: %v", b, err)
	}
	if dev.Name != DeviceName || dev.MTU != deviceMTU || strings.Join(dev.Routes, ",") != "10.96.0.0/16" || dev.SocketPath != cfg.Paths.HelperSocket() || spec.Addr != device.DefaultAddr || spec.Addr6.IsValid() {
		t.Errorf("device request %+v", dev)
	}
	if rc.Nameserver.String() != "10.96.0.10" || strings.Join(rc.Domains, ",") != "cluster.local" || strings.Join(rc.Search, ",") != "ns.svc.cluster.local" {
		t.Errorf("DNS request %+v", rc)
	}
}

// TestChooseDevice: the device's addresses as the daemon decides them, and
// the request the helper then reads, on each OS.
func TestChooseDevice(t *testing.T) {
	v4 := []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16")}
	dual := append(append([]netip.Prefix(nil), v4...), netip.MustParsePrefix("fd00:10:96::/112"))
	ula := netip.MustParsePrefix("fd12:3456:789a::1/128")
	random := func() io.Reader { return bytes.NewReader([]byte{0x12, 0x34, 0x56, 0x78, 0x9a}) }
	own := netip.MustParsePrefix("100.127.255.254/32")
	for _, tt := range []struct {
		name   string
		goos   string
		cfg    Config
		routes []netip.Prefix
		want   deviceChoice
	}{
		{"default address", "linux", Config{}, dual, deviceChoice{Addr: device.DefaultAddr}},
		{"configured address", "darwin", Config{DeviceAddr: own}, v4, deviceChoice{Addr: own}},
		{"darwin, IPv6 route: a ULA too", "darwin", Config{}, dual, deviceChoice{Addr: device.DefaultAddr, Addr6: ula}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chooseDevice(tt.goos, tt.cfg, tt.routes, random())
			if err != nil || got != tt.want {
				t.Fatalf("chooseDevice = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	// What a darwin daemon asks for reaches the helper whole.
	dc := deviceChoice{Addr: device.DefaultAddr, Addr6: ula, LoopbackPort: 50053}
	req := helperRequest(Config{Paths: Paths{RuntimeDir: "/tmp/kubectl-tele-1000"}}, dual, netip.MustParseAddr("10.96.0.10"), nil, []string{"cluster.local"}, dc)
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	_, spec, _, err := helper.Parse(b, 1000)
	if runtime.GOOS == "darwin" {
		if err != nil || spec.Addr6 != ula {
			t.Errorf("helper.Parse: %+v %v", spec, err)
		}
	} else if err == nil || !strings.Contains(err.Error(), "only macOS") {
		// This helper is not darwin's: it refuses the loopback port.
		t.Errorf("helper.Parse on %s of a darwin request: %v", runtime.GOOS, err)
	}
	if !loopbackDNS("darwin") || loopbackDNS("linux") || loopbackDNS("windows") {
		t.Error("loopback DNS is for darwin only")
	}
}
