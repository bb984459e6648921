package session

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	go func() { _, _, err := receiveDevice(context.Background(), path, quit); done <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no helper socket")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(quit)
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

// TestHelperRequest: what the daemon asks of the helper, as the helper reads it.
func TestHelperRequest(t *testing.T) {
	cfg := Config{Paths: Paths{RuntimeDir: "/run/user/1000/kubectl-tele"}}
	raw, err := helperRequest(cfg, []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16")}, netip.MustParseAddr("10.96.0.10"), []string{"ns.svc.cluster.local"}, "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	var req helper.Request
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	var dev device.Request
	if err := json.Unmarshal(req.Device, &dev); err != nil {
		t.Fatal(err)
	}
	if dev.Version != device.RequestVersion || dev.Name != DeviceName || dev.MTU != deviceMTU || strings.Join(dev.Routes, ",") != "10.96.0.0/16" || dev.SocketPath != cfg.Paths.HelperSocket() {
		t.Errorf("device request %+v", dev)
	}
	if req.DNS.Nameserver != "10.96.0.10" || strings.Join(req.DNS.Domains, ",") != "cluster.local" || strings.Join(req.DNS.Search, ",") != "ns.svc.cluster.local" {
		t.Errorf("DNS request %+v", req.DNS)
	}
}
