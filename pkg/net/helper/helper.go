// Package helper is the one part of kubectl-tele that runs as root, briefly:
// run through sudo by connect and quit, it validates a request, creates the
// TUN device and its routes, points the OS resolver at the session's DNS,
// hands the device to the unprivileged daemon over a Unix socket, and exits.
// "down" puts the resolver back and removes a device a dead session left.
package helper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kubectl-tele/kubectl-tele/pkg/net/device"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/resolver"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// Limits on what the helper accepts.
const (
	maxRequest = 64 << 10
	maxSearch  = 8
)

// StateDir is where the helper keeps what "down" needs (the resolver's
// backup); see [stateDir].
func StateDir() (string, error) { return stateDir(runtime.GOOS, netnsInode) }

// stateDir decides the state folder for goos. On Linux it is one folder per
// network namespace: several sessions on one machine in different
// namespaces (the e2e laptops) never share a backup. darwin has no network
// namespaces and its resolver (/etc/resolver files) keeps no state, so it
// is one folder where macOS keeps system state, /var/db. Windows is not
// supported natively (see plugin's checkPlatform).
func stateDir(goos string, netns func() (uint64, error)) (string, error) {
	switch goos {
	case "linux":
		ino, err := netns()
		if err != nil {
			return "", fmt.Errorf("identify network namespace: %w", err)
		}
		return filepath.Join("/var/lib/kubectl-tele", "netns-"+strconv.FormatUint(ino, 10)), nil
	case "darwin":
		return "/var/db/kubectl-tele", nil
	case "windows":
		return "", fmt.Errorf("helper state on %s: %w", goos, errors.ErrUnsupported)
	}
	return "/var/lib/kubectl-tele", nil
}

// netnsInode identifies the calling thread's network namespace.
func netnsInode() (uint64, error) {
	fi, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return 0, err
	}
	ino, ok := inode(fi)
	if !ok {
		return 0, errors.New("no inode")
	}
	return ino, nil
}

func resolverFor(ctx context.Context, log *slog.Logger) (resolver.Configurator, error) {
	dir, err := StateDir()
	if err != nil {
		return nil, err
	}
	return resolver.Detect(ctx, resolver.Options{StateDir: dir, Logger: log}), nil
}

// Parse decodes and validates a request, a teleproto.HelperRequest in
// protojson (what connect writes on the helper's stdin). uid is the user the
// helper acts for (SUDO_UID): the socket must be theirs.
func Parse(data []byte, uid int) (device.Request, device.Spec, resolver.Config, error) {
	var zero resolver.Config
	if len(data) > maxRequest {
		return device.Request{}, device.Spec{}, zero, fmt.Errorf("request of %d bytes is over the limit of %d", len(data), maxRequest)
	}
	var r teleproto.HelperRequest
	if err := protojson.Unmarshal(data, &r); err != nil {
		return device.Request{}, device.Spec{}, zero, fmt.Errorf("decode request: %w", err)
	}
	dr, err := device.CheckRequest(r.GetDevice())
	if err != nil {
		return device.Request{}, device.Spec{}, zero, err
	}
	spec, err := dr.Spec()
	if err != nil {
		return device.Request{}, device.Spec{}, zero, err
	}
	rc, err := validateDNS(r.GetDns(), spec)
	if err != nil {
		return device.Request{}, device.Spec{}, zero, err
	}
	if rc, err = loopbackDNS(rc, r.GetDns().GetLoopbackPort(), runtime.GOOS); err != nil {
		return device.Request{}, device.Spec{}, zero, err
	}
	rc.Device = spec.Name
	return dr, spec, rc, nil
}

// validateDNS accepts a nameserver only inside the device's routes, so the
// helper never points the resolver anywhere but into the session, and only
// well-formed domain names.
func validateDNS(d *teleproto.HelperDNS, spec device.Spec) (resolver.Config, error) {
	ns, err := netip.ParseAddr(d.GetNameserver())
	if err != nil {
		return resolver.Config{}, fmt.Errorf("dns nameserver %q: %w", d.GetNameserver(), err)
	}
	inside := false
	for _, r := range spec.Routes {
		inside = inside || r.Contains(ns)
	}
	if !inside {
		return resolver.Config{}, fmt.Errorf("dns nameserver %s is not inside the session's routes", ns)
	}
	if len(d.GetSearch()) > maxSearch || len(d.GetDomains()) > resolver.MaxRoutingDomains {
		return resolver.Config{}, fmt.Errorf("at most %d search and %d routing domains are allowed", maxSearch, resolver.MaxRoutingDomains)
	}
	for _, n := range append(append([]string{}, d.GetSearch()...), d.GetDomains()...) {
		// No slash either: on macOS each domain names a file in /etc/resolver.
		if _, ok := dns.IsDomainName(n); !ok || n == "" || !printable(n) || strings.ContainsAny(n, "\\\"'/") || len(n) > 253 {
			return resolver.Config{}, fmt.Errorf("dns domain %q is not a valid name", n)
		}
	}
	return resolver.Config{Nameserver: ns, Search: d.GetSearch(), Domains: d.GetDomains()}, nil
}

// loopbackDNS points rc at the daemon's loopback DNS server when the
// request names its port: only on darwin, whose resolver files can say
// `port` (resolver(5)); a resolv.conf or systemd-resolved cannot. The
// nameserver inside the routes has been checked all the same: the daemon
// answers there too. An unprivileged port only: the daemon cannot bind
// another, and a privileged one would be some root service's.
func loopbackDNS(rc resolver.Config, port uint32, goos string) (resolver.Config, error) {
	switch {
	case port == 0:
		return rc, nil
	case goos != "darwin":
		return rc, fmt.Errorf("dns loopback port %d: only macOS resolver files can name a port", port)
	case port < 1024 || port > 65535:
		return rc, fmt.Errorf("dns loopback port %d: must be between 1024 and 65535", port)
	}
	rc.Nameserver = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	rc.Port = uint16(port)
	return rc, nil
}

// printable reports whether s is visible ASCII only: a domain written into
// resolv.conf can carry no line break, space or control byte.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Up does what a Request asks: device, routes, resolver, then hands the
// device over. On any failure it undoes what it did.
func Up(ctx context.Context, data []byte, uid int, log *slog.Logger) (err error) {
	dr, spec, rc, err := Parse(data, uid)
	if err != nil {
		return err
	}
	if err := device.ValidateSocketPath(dr.SocketPath, uid); err != nil {
		return err
	}
	if !dr.AllowConflictingSubnets {
		existing, err := device.ListRoutes(ctx)
		if err != nil {
			return err
		}
		if err := device.CheckConflicts(spec.Routes, existing, spec.Name); err != nil {
			return err
		}
	}
	if err := checkAddr(ctx, spec); err != nil {
		return err
	}
	// A device of that name left by a session that died goes first, and
	// its nameserver's fence.
	if err := device.Remove(spec.Name); err != nil {
		return err
	}
	if err := device.Unfence(); err != nil {
		return err
	}
	f, err := device.Create(ctx, spec)
	if err != nil {
		return err
	}
	defer f.Close() // the daemon holds its own copy once sent
	log.Info("device created", "device", spec.Name, "addr", spec.Addr, "routes", spec.Routes)
	// Lookups must not wait on our nameserver once the daemon is gone
	// (see device.Fence): the laptop's own nameservers follow it.
	if err := device.Fence(spec, rc.Nameserver); err != nil {
		device.Remove(spec.Name)
		device.Unfence()
		return err
	}
	res, err := resolverFor(ctx, log)
	if err != nil {
		return err
	}
	if err := res.Apply(ctx, rc); err != nil {
		device.Remove(spec.Name)
		device.Unfence()
		return fmt.Errorf("configure the resolver (%s): %w", res.Mode(), err)
	}
	defer func() {
		if err != nil {
			res.Restore(context.WithoutCancel(ctx))
			device.Remove(spec.Name)
			device.Unfence()
		}
	}()
	log.Info("resolver configured", "mode", res.Mode(), "nameserver", rc.Nameserver, "search", rc.Search)
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "unix", dr.SocketPath)
	if err != nil {
		return fmt.Errorf("reach the daemon at %s: %w", dr.SocketPath, err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	if err := device.CheckPeer(uc, uid); err != nil {
		return err
	}
	meta, _ := protojson.Marshal(&teleproto.DeviceHandoff{Device: spec.Name, DnsMode: res.Mode()})
	if err := device.SendFile(uc, f, meta); err != nil {
		return fmt.Errorf("hand the device to the daemon: %w", err)
	}
	// Wait for the daemon to say it has the device, so that a daemon dying
	// in between does not leave the resolver pointing nowhere.
	uc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(uc, make([]byte, 1)); err != nil {
		return fmt.Errorf("the daemon did not take the device: %w", err)
	}
	return nil
}

// checkAddr refuses a session address that the host already has or routes
// elsewhere (a fake-IP proxy's 198.18.0.0/15), whatever
// --allow-conflicting-subnets says: that flag is about cluster routes, and
// a shared source address breaks both networks.
func checkAddr(ctx context.Context, spec device.Spec) error {
	routes, err := device.ListRoutes(ctx)
	if err != nil {
		return err
	}
	addrs, err := device.ListAddrs()
	if err != nil {
		return err
	}
	return device.CheckAddr(spec.Addr, routes, addrs, spec.Name)
}

// Update applies a request's DNS settings again to the running session's
// device: the daemon runs it (through sudo -n) when the routing domains
// change while connected. It touches nothing but the resolver, and fails if
// the resolver is not the mode the session's helper chose (mode), so a
// late update never configures a resolver the session does not use.
func Update(ctx context.Context, data []byte, uid int, mode string, log *slog.Logger) error {
	_, _, rc, err := Parse(data, uid)
	if err != nil {
		return err
	}
	res, err := resolverFor(ctx, log)
	if err != nil {
		return err
	}
	if res.Mode() != mode {
		return fmt.Errorf("the resolver is now %s, not the session's %s: run kubectl tele quit and connect again", res.Mode(), mode)
	}
	if err := res.Apply(ctx, rc); err != nil {
		return fmt.Errorf("update the resolver (%s): %w", res.Mode(), err)
	}
	log.Info("resolver updated", "mode", res.Mode(), "domains", rc.Domains)
	return nil
}

// Down puts the resolver back and removes the device name if a dead session
// left it. It is safe to run when there is nothing to undo.
func Down(ctx context.Context, name string, log *slog.Logger) error {
	if err := device.ValidateName(name); err != nil {
		return err
	}
	res, err := resolverFor(ctx, log)
	if err != nil {
		return err
	}
	var errs []error
	if err := res.Restore(ctx); err != nil {
		errs = append(errs, fmt.Errorf("restore the resolver (%s): %w", res.Mode(), err))
	}
	if err := device.Remove(name); err != nil {
		errs = append(errs, err)
	}
	// After the resolver: the fence is what keeps a dead session's
	// resolver configuration from stalling lookups.
	if err := device.Unfence(); err != nil {
		errs = append(errs, err)
	}
	// Nothing is left to restore: the namespace's state folder goes too
	// (os.Remove keeps a folder that still holds anything).
	if dir, err := StateDir(); err == nil && len(errs) == 0 {
		os.Remove(dir)
	}
	log.Info("helper down", "device", name, "dnsMode", res.Mode(), "err", errors.Join(errs...))
	return errors.Join(errs...)
}
