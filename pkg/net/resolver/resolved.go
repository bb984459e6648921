package resolver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// LinkDomain is one entry of systemd-resolved's per-link domain list.
type LinkDomain struct {
	Domain string
	// RoutingOnly domains ("~domain") route names under them to the link
	// without being used as search domains.
	RoutingOnly bool
}

// ResolvedLink is the part of systemd-resolved's D-Bus API
// (org.freedesktop.resolve1.Manager) we use. It is an interface so that
// tests can record the calls.
type ResolvedLink interface {
	SetLinkDNS(ctx context.Context, ifindex int, servers []netip.Addr) error
	SetLinkDomains(ctx context.Context, ifindex int, domains []LinkDomain) error
	SetLinkDefaultRoute(ctx context.Context, ifindex int, enable bool) error
	SetLinkDNSSEC(ctx context.Context, ifindex int, mode string) error
	RevertLink(ctx context.Context, ifindex int) error
}

// Resolved configures systemd-resolved for the TUN link only: our
// nameserver, the search list and the routing domains on that link, and
// no default route, so that other names keep going where they went.
type Resolved struct {
	bus ResolvedLink
	// linkIndex finds a device's index; net.InterfaceByName by default.
	linkIndex func(name string) (int, error)
	// statePath remembers the configured link, for a Restore in another
	// process.
	statePath string
	log       *slog.Logger
}

// NewResolved returns a systemd-resolved Configurator using bus.
func NewResolved(bus ResolvedLink, opts Options) *Resolved {
	opts = opts.withDefaults()
	return &Resolved{
		bus: bus,
		linkIndex: func(name string) (int, error) {
			ifc, err := net.InterfaceByName(name)
			if err != nil {
				return 0, err
			}
			return ifc.Index, nil
		},
		statePath: filepath.Join(opts.StateDir, "resolved.link"),
		log:       opts.Logger,
	}
}

// Mode implements Configurator.
func (r *Resolved) Mode() string { return ModeResolved }

// ModeResolved is the Mode of systemd-resolved's per-link settings.
const ModeResolved = "systemd-resolved"

// LinkDomains is the domain list for the link: the search list (search
// and routing), then the other routing domains as routing-only.
func LinkDomains(cfg Config) []LinkDomain {
	var out []LinkDomain
	for _, s := range cfg.Search {
		out = append(out, LinkDomain{Domain: s})
	}
	for _, d := range cfg.Domains {
		if !slices.Contains(cfg.Search, d) {
			out = append(out, LinkDomain{Domain: d, RoutingOnly: true})
		}
	}
	return out
}

// Apply implements Configurator.
func (r *Resolved) Apply(ctx context.Context, cfg Config) error {
	cfg, err := cfg.validate(true)
	if err != nil {
		return fmt.Errorf("configure systemd-resolved: %w", err)
	}
	idx, err := r.linkIndex(cfg.Device)
	if err != nil {
		return fmt.Errorf("find link %s: %w", cfg.Device, err)
	}
	// An update of this session's link (new routing domains) replaces its
	// settings in place, with no moment without them; anything else saved
	// is a previous session's, undone first.
	name, sidx, ok := r.saved()
	update := ok && name == cfg.Device && sidx == idx
	if !update {
		if err := r.Restore(ctx); err != nil {
			r.log.Warn("could not revert the link of a previous session", "err", err)
		}
	}
	if err := writeAtomic(r.statePath, fmt.Appendf(nil, "%s %d\n", cfg.Device, idx)); err != nil {
		return fmt.Errorf("save link state %s: %w", r.statePath, err)
	}
	fail := func(what string, err error) error {
		err = fmt.Errorf("configure link %s (%d) in systemd-resolved: %s: %w", cfg.Device, idx, what, err)
		if update {
			// The session's settings stay as they were: reverting them
			// would take every cluster name from a running session.
			return err
		}
		if rerr := r.Restore(context.WithoutCancel(ctx)); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return err
	}
	if err := r.bus.SetLinkDNS(ctx, idx, []netip.Addr{cfg.Nameserver.WithZone("")}); err != nil {
		return fail("SetLinkDNS", err)
	}
	if err := r.bus.SetLinkDomains(ctx, idx, LinkDomains(cfg)); err != nil {
		return fail("SetLinkDomains", err)
	}
	if err := r.bus.SetLinkDefaultRoute(ctx, idx, false); err != nil {
		return fail("SetLinkDefaultRoute", err)
	}
	// Our answers are unsigned; a system set to DNSSEC=yes would reject
	// them. Older resolved builds may not know the call: not fatal.
	if err := r.bus.SetLinkDNSSEC(ctx, idx, "no"); err != nil {
		r.log.Warn("could not turn DNSSEC off for the link", "link", cfg.Device, "err", err)
	}
	r.log.Info("resolver configured", "mode", r.Mode(), "link", cfg.Device, "nameserver", cfg.Nameserver, "domains", LinkDomains(cfg))
	return nil
}

// Restore implements Configurator. The link is reverted only if it still
// is the device we configured: once the TUN device is gone, resolved has
// forgotten its settings already, and the index may be someone else's.
// saved is the link a session configured, from the state file.
func (r *Resolved) saved() (name string, idx int, ok bool) {
	data, err := os.ReadFile(r.statePath)
	if err != nil {
		return "", 0, false
	}
	name, idxText, _ := strings.Cut(string(bytes.TrimSpace(data)), " ")
	idx, err = strconv.Atoi(idxText)
	return name, idx, err == nil
}

func (r *Resolved) Restore(ctx context.Context) error {
	data, err := os.ReadFile(r.statePath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read link state %s: %w", r.statePath, err)
	}
	name, idxText, _ := strings.Cut(string(bytes.TrimSpace(data)), " ")
	idx, perr := strconv.Atoi(idxText)
	if cur, err := r.linkIndex(name); perr == nil && err == nil && cur == idx {
		if err := r.bus.RevertLink(ctx, idx); err != nil {
			return fmt.Errorf("revert link %s (%d) in systemd-resolved: %w", name, idx, err)
		}
	}
	if err := os.Remove(r.statePath); err != nil {
		return fmt.Errorf("remove link state %s: %w", r.statePath, err)
	}
	r.log.Info("resolver restored", "mode", r.Mode(), "link", name)
	return nil
}

// resolvedManages says whether the C library's lookups go through
// systemd-resolved, judged from files under root: resolved runs (its
// runtime directory exists) and either resolv.conf points at its stub
// listener or nsswitch.conf uses nss-resolve. When resolved runs but
// resolv.conf lists other servers (uplink mode, or a network namespace
// with its own resolv.conf), per-link settings would change nothing.
func resolvedManages(root string) bool {
	if fi, err := os.Stat(filepath.Join(root, "run/systemd/resolve")); err != nil || !fi.IsDir() {
		return false
	}
	if data, err := os.ReadFile(filepath.Join(root, "etc/resolv.conf")); err == nil {
		if slices.ContainsFunc(ParseResolvConf(data).Nameservers, isResolvedStub) {
			return true
		}
	}
	if data, err := os.ReadFile(filepath.Join(root, "etc/nsswitch.conf")); err == nil {
		for line := range strings.Lines(string(data)) {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "hosts:" && slices.Contains(f[1:], "resolve") {
				return true
			}
		}
	}
	return false
}

// detectLinux chooses systemd-resolved when it manages lookups and owns
// its bus name, else resolv.conf.
func detectLinux(ctx context.Context, opts Options, resolvedOnBus func(context.Context) (ResolvedLink, bool)) Configurator {
	opts = opts.withDefaults()
	if resolvedManages(opts.Root) {
		if bus, ok := resolvedOnBus(ctx); ok {
			return NewResolved(bus, opts)
		}
		opts.Logger.Info("systemd-resolved is not on the system bus; writing resolv.conf")
	}
	return NewResolvConf(opts)
}

// resolvedUpstreamFile is where systemd-resolved lists the servers it
// sends names to (global and per link), as a resolv.conf; the stub's file
// (stub-resolv.conf, /etc/resolv.conf) names only 127.0.0.53.
const resolvedUpstreamFile = "run/systemd/resolve/resolv.conf"

// ResolvedUpstreams returns the servers systemd-resolved itself asks, for
// our DNS server's non-cluster names, leaving out its stub listeners
// (127.0.0.53 and 127.0.0.54) and own, our nameserver on the TUN link: a
// name sent to either comes back to us (resolved routes it to the link by
// its routing domain), and a miss would go round until every timeout ran
// out. None (nil) means such names are answered NXDOMAIN; see
// dns.Config.Upstream.
func ResolvedUpstreams(opts Options, own netip.Addr) ([]netip.Addr, error) {
	opts = opts.withDefaults()
	path := filepath.Join(opts.Root, resolvedUpstreamFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read systemd-resolved's servers %s: %w", path, err)
	}
	var out []netip.Addr
	for _, a := range ParseResolvConf(data).Nameservers {
		if isResolvedStub(a) || a.WithZone("") == own.WithZone("") || slices.Contains(out, a) {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

func isResolvedStub(a netip.Addr) bool {
	return a == netip.AddrFrom4([4]byte{127, 0, 0, 53}) || a == netip.AddrFrom4([4]byte{127, 0, 0, 54})
}
