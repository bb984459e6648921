package session

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kubectl-tele/kubectl-tele/pkg/net/device"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// The hand-off with the privileged helper: the request it is given, and
// the TUN device it passes back over a Unix socket.

// deviceChoice is what the daemon decides of the device besides its routes.
type deviceChoice struct {
	Addr netip.Prefix
	// Addr6 is a second, IPv6, address; zero for none (device.NeedsAddr6).
	Addr6 netip.Prefix
	// LoopbackPort is the daemon's loopback DNS server's; 0 for none.
	LoopbackPort uint16
}

// chooseDevice decides the device's addresses on goos: cfg's address (or
// the default) and, where an IPv6 route needs one, a ULA chosen once for
// the session from random (nil: crypto/rand).
func chooseDevice(goos string, cfg Config, routes []netip.Prefix, random io.Reader) (deviceChoice, error) {
	dc := deviceChoice{Addr: cfg.DeviceAddr}
	if !dc.Addr.IsValid() {
		dc.Addr = device.DefaultAddr
	}
	if device.NeedsAddr6(goos, dc.Addr, routes) {
		var err error
		if dc.Addr6, err = device.ChooseULA(random, routes); err != nil {
			return dc, err
		}
	}
	return dc, nil
}

// loopbackDNS says whether the daemon serves DNS on loopback for the OS
// resolver: on macOS, whose /etc/resolver files can name a port.
func loopbackDNS(goos string) bool { return goos == "darwin" }

func helperRequest(cfg Config, routes []netip.Prefix, dnsIP netip.Addr, search, domains []string, dc deviceChoice) *teleproto.HelperRequest {
	req := &teleproto.HelperRequest{
		Device: &teleproto.DeviceRequest{
			Version:                 teleproto.CurrentHelperVersion,
			Name:                    DeviceName,
			Mtu:                     deviceMTU,
			Addr:                    dc.Addr.String(),
			Routes:                  prefixStrings(routes),
			SocketPath:              cfg.Paths.HelperSocket(),
			AllowConflictingSubnets: cfg.AllowConflictingSubnets,
		},
		Dns: &teleproto.HelperDNS{Nameserver: dnsIP.String(), Search: search, Domains: domains,
			LoopbackPort: uint32(dc.LoopbackPort)},
	}
	if dc.Addr6.IsValid() {
		req.Device.Addr6 = dc.Addr6.String()
	}
	return req
}

// listenUnix listens on a socket only its user may use, replacing a stale
// socket file a dead daemon left.
func listenUnix(path string) (*net.UnixListener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("a daemon already listens on %s", path)
	}
	os.Remove(path)
	old := umask(0o177)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// receiveDevice waits for the helper to hand over the TUN device.
func receiveDevice(ctx context.Context, path string, quit <-chan struct{}) (devT tun.Device, mode string, err error) {
	l, err := listenUnix(path)
	if err != nil {
		return nil, "", err
	}
	defer func() { l.Close(); os.Remove(path) }()
	// The user may be typing a sudo password: wait long, but not forever.
	l.SetDeadline(time.Now().Add(5 * time.Minute))
	// Quit, or ctx, ends the wait; the goroutine ends with this function.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	go func() {
		select {
		case <-quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, "", fmt.Errorf("wait for the TUN device from the helper: %w", err)
		}
		if err := device.CheckPeer(c, 0); err != nil { // only root hands us a device
			c.Close()
			continue
		}
		f, meta, err := device.ReceiveFile(c)
		if err != nil {
			c.Close()
			return nil, "", err
		}
		tdev, err := device.Open(f)
		if err != nil {
			c.Close()
			return nil, "", fmt.Errorf("open the TUN device: %w", err)
		}
		c.Write([]byte{1}) // the helper waits for this before it exits
		c.Close()
		var m teleproto.DeviceHandoff
		// Only shown by status: a note that does not parse leaves it empty.
		_ = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(meta, &m)
		return tdev, strings.TrimSpace(m.GetDnsMode()), nil
	}
}
