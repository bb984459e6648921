package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/device"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/resolver"
	"github.com/kubectl-tele/kubectl-tele/pkg/plugin/config"
	"github.com/kubectl-tele/kubectl-tele/pkg/session"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

// ConnectOptions holds the flags and clients of kubectl tele connect.
type ConnectOptions struct {
	Flags   *genericclioptions.ConfigFlags
	Streams genericiooptions.IOStreams

	ManagerNamespace string
	// Registry and ManagerImage are the flags; after Complete, ManagerImage
	// is the image decided from them and the config file.
	Registry         string
	ManagerImage     string
	ImagePullSecrets []string
	IdleTimeout      time.Duration
	// RefreshInterval is how often a manager this connect starts reads
	// cluster info again (hidden flag, for tests; 0: the manager's default).
	RefreshInterval         time.Duration
	AlsoProxy, NeverProxy   []string
	AllowConflictingSubnets bool
	// DeviceAddr is the laptop's address on the TUN device (--device-addr).
	DeviceAddr string
	Timeout    time.Duration
	// DNSNamespaces resolve as NAME.NS on split-DNS laptops when
	// namespaces cannot be listed.
	DNSNamespaces []string

	namespace   string
	contextName string
	restConfig  *rest.Config
	client      kubernetes.Interface
	also, never []netip.Prefix
	kubeArgs    []string // the kubeconfig flags, passed on to the daemon
	paths       session.Paths
	// idleTimeoutFrom names where IdleTimeout was asked for (the flag or
	// the config file); "" when it is the default.
	idleTimeoutFrom string
}

// NewCmdConnect builds kubectl tele connect.
func NewCmdConnect(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ConnectOptions{Flags: flags, Streams: streams}
	cmd := &cobra.Command{
		Use:   "connect [-n NAMESPACE]",
		Short: "Reach the cluster from this machine as a pod of the namespace does",
		Long: `Connect this machine to a namespace: local programs then reach Services and
pods by the names a pod of the namespace uses (my-svc, my-svc.my-ns,
my-svc.my-ns.svc.cluster.local, a StatefulSet's pod as my-sts-0.my-svc), by
ClusterIP and by pod IP, over TCP and UDP.

The traffic manager is started in the namespace if it is not running (a Job
that removes itself when idle). Creating the TUN device, routes and DNS
settings needs root for a moment: you may be asked for your sudo password.

The manager and the agents run this build's image. From a registry of your
own, copy it there once with kubectl tele image copy and give --registry, or
set registry in the config file ($KUBECTL_TELE_CONFIG, else
kubectl-tele/config.yaml in the user config directory), which can also hold
managerImage, imagePullSecrets, neverProxy, alsoProxy, managerIdleTimeout and
deviceAddr.
Flags win over the file; kubectl tele config view shows what it sets.`,
		Example: `  kubectl tele connect -n my-ns
  curl http://my-service:8080

  # The image from your registry, pulled with a Secret of the namespace
  kubectl tele connect -n my-ns --registry ghcr.io/my-org --image-pull-secret regcred`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Before Complete: nothing else is worth fixing on a platform
			// that cannot connect.
			if err := checkPlatform(runtime.GOOS); err != nil {
				return err
			}
			if err := o.Complete(cmd); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// Defaults of connect's flags, shown by config view too.
const defaultIdleTimeout = 10 * time.Minute

// AddFlags binds connect's flags to o.
func (o *ConnectOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.ManagerNamespace, "manager-namespace", "", "namespace of the traffic manager (default: the connected namespace)")
	f.StringVar(&o.Registry, "registry", "", "registry (HOST[:PORT][/PATH]) holding this build's image as REGISTRY/kubectl-tele:VERSION (kubectl tele image copy puts it there)")
	f.StringVar(&o.ManagerImage, "manager-image", version.Image(), "image of the traffic manager and the agents, a full reference (instead of --registry)")
	f.StringSliceVar(&o.ImagePullSecrets, "image-pull-secret", nil, "Secret in the namespace to pull the image with (repeatable); the intercepted pods need it too")
	f.DurationVar(&o.IdleTimeout, "manager-idle-timeout", defaultIdleTimeout, "the manager exits after this long without a session")
	f.StringSliceVar(&o.AlsoProxy, "also-proxy", nil, "also route this CIDR into the cluster (repeatable)")
	f.StringSliceVar(&o.NeverProxy, "never-proxy", nil, "never route this CIDR into the cluster (repeatable)")
	f.BoolVar(&o.AllowConflictingSubnets, "allow-conflicting-subnets", false, "route cluster CIDRs even where they overlap a local route")
	f.StringVar(&o.DeviceAddr, "device-addr", device.DefaultAddr.Addr().String(), "the laptop's own address on the TUN device; change it when another network (a fake-IP proxy's 198.18.0.0/15) has it")
	f.DurationVar(&o.Timeout, "timeout", 3*time.Minute, "give up connecting after this long")
	f.DurationVar(&o.RefreshInterval, "manager-refresh-interval", 0, "how often a manager this connect starts reads cluster info again (0: its default, 5m)")
	_ = f.MarkHidden("manager-refresh-interval") // for tests of a control-plane blip
	f.StringSliceVar(&o.DNSNamespaces, "dns-namespace", nil, "a namespace whose Services resolve as NAME.NAMESPACE on systemd-resolved and macOS when you may not list namespaces (repeatable)")
}

// applyConfig takes from the config file what the command line did not say,
// and decides the image. The values go into the same fields as the flags', so
// they reach the manager and the daemon the same way.
func (o *ConnectOptions) applyConfig(f *pflag.FlagSet, c *config.Config) error {
	given := func(flag string) bool { return f.Changed(flag) }
	if !given("image-pull-secret") && len(c.ImagePullSecrets) > 0 {
		o.ImagePullSecrets = c.ImagePullSecrets
	}
	if !given("also-proxy") && len(c.AlsoProxy) > 0 {
		o.AlsoProxy = c.AlsoProxy
	}
	if !given("never-proxy") && len(c.NeverProxy) > 0 {
		o.NeverProxy = c.NeverProxy
	}
	if !given("device-addr") && c.DeviceAddr != "" {
		o.DeviceAddr = c.DeviceAddr
	}
	if !given("dns-namespace") && len(c.DNSNamespaces) > 0 {
		o.DNSNamespaces = c.DNSNamespaces
	}
	switch {
	case given("manager-idle-timeout"):
		o.idleTimeoutFrom = "--manager-idle-timeout"
	case c.IdleTimeout != 0:
		o.IdleTimeout = c.IdleTimeout
		o.idleTimeoutFrom = "managerIdleTimeout in " + c.Path
	}
	choice := imageChoice{FileRegistry: c.Registry, FileImage: c.ManagerImage, File: c.Path}
	if given("registry") {
		choice.FlagRegistry = o.Registry
	}
	if given("manager-image") {
		choice.FlagImage = o.ManagerImage
	}
	img, _, err := choice.resolve()
	if err != nil {
		return err
	}
	o.ManagerImage = img
	return nil
}

// Complete fills in what comes from kubeconfig.
func (o *ConnectOptions) Complete(cmd *cobra.Command) error {
	c, err := config.LoadDefault()
	if err != nil {
		return err
	}
	if err := o.applyConfig(cmd.Flags(), c); err != nil {
		return err
	}
	loader := o.Flags.ToRawKubeConfigLoader()
	if o.namespace, _, err = loader.Namespace(); err != nil {
		return fmt.Errorf("read kubeconfig: %w", err)
	}
	raw, err := loader.RawConfig()
	if err != nil {
		return fmt.Errorf("read kubeconfig: %w", err)
	}
	o.contextName = raw.CurrentContext
	if o.Flags.Context != nil && *o.Flags.Context != "" {
		o.contextName = *o.Flags.Context
	}
	if o.restConfig, err = o.Flags.ToRESTConfig(); err != nil {
		return fmt.Errorf("read kubeconfig: %w", err)
	}
	if o.client, err = kubernetes.NewForConfig(o.restConfig); err != nil {
		return err
	}
	if o.ManagerNamespace == "" {
		o.ManagerNamespace = o.namespace
	}
	o.kubeArgs = kubeconfigArgs(cmd)
	o.paths, err = session.DefaultPaths()
	return err
}

// kubeconfigArgs returns the ConfigFlags the user set, to pass on.
func kubeconfigArgs(cmd *cobra.Command) []string {
	var out []string
	kube := cmd.Root().PersistentFlags()
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if kube.Lookup(f.Name) == nil {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				out = append(out, "--"+f.Name+"="+v)
			}
			return
		}
		out = append(out, "--"+f.Name+"="+f.Value.String())
	})
	return out
}

// Validate rejects bad flags with a message saying what to do.
func (o *ConnectOptions) Validate() error {
	if err := checkPlatform(runtime.GOOS); err != nil {
		return err
	}
	var err error
	if o.also, err = parseCIDRs("--also-proxy", o.AlsoProxy); err != nil {
		return err
	}
	if o.never, err = parseCIDRs("--never-proxy", o.NeverProxy); err != nil {
		return err
	}
	if o.DeviceAddr == "" {
		o.DeviceAddr = device.DefaultAddr.Addr().String()
	}
	if _, err := device.ParseAddr(o.DeviceAddr); err != nil {
		return usagef("--device-addr: %v", err)
	}
	for _, n := range o.DNSNamespaces {
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			return usagef("--dns-namespace %q is not a namespace name: %s", n, strings.Join(errs, "; "))
		}
	}
	if o.IdleTimeout < config.MinIdleTimeout {
		return usagef("--manager-idle-timeout %s is too short: give at least %s", o.IdleTimeout, config.MinIdleTimeout)
	}
	return nil
}

func parseCIDRs(flag string, in []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range in {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, usagef("%s %q is not a CIDR (like 10.0.0.0/16)", flag, s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (o *ConnectOptions) progress(s string) { fmt.Fprintf(o.Streams.ErrOut, "  %s\n", s) }

// Run connects.
func (o *ConnectOptions) Run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	ctl := session.NewControl(o.paths.ControlSocket())
	defer ctl.Close()
	if st, err := ctl.Status(ctx); err == nil {
		if st.GetContext() == o.contextName && st.GetNamespace() == o.namespace && st.GetPhase() == teleproto.ConnectPhase_CONNECT_PHASE_CONNECTED {
			fmt.Fprintf(o.Streams.Out, "Already connected to namespace %s of context %s.\n", st.GetNamespace(), st.GetContext())
			if w := daemonSkew(st); w != "" {
				fmt.Fprintf(o.Streams.ErrOut, "Warning: %s\n", w)
			}
			return nil
		}
		return fmt.Errorf("already connected to namespace %s of context %s (%s): run kubectl tele quit first", st.GetNamespace(), st.GetContext(), st.GetPhase().Label())
	} else if !errors.Is(err, session.ErrNotRunning) {
		return err
	}
	if err := o.repair(ctx); err != nil {
		return err
	}
	fmt.Fprintf(o.Streams.ErrOut, "Connecting to namespace %s of context %s\n", o.namespace, o.contextName)
	vctx, vcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := o.client.Discovery().RESTClient().Get().AbsPath("/version").Do(vctx).Raw()
	vcancel()
	if err != nil {
		return fmt.Errorf("cannot reach the API server at %s: %w (check your kubeconfig, context and network)", o.restConfig.Host, err)
	}
	m, err := managerclient.Ensure(ctx, managerclient.Options{
		Client: o.client, Namespace: o.ManagerNamespace, Image: o.ManagerImage,
		PullSecrets: o.ImagePullSecrets, Version: version.Version, IdleTimeout: o.IdleTimeout, RefreshInterval: o.RefreshInterval, Progress: o.progress,
		// A manager of another protocol is replaced only if it has no session.
		Sessions: managerclient.CountSessions(o.restConfig, o.client),
	})
	if err != nil {
		return err
	}
	if w := idleTimeoutWarning(o.idleTimeoutFrom, o.IdleTimeout, m); w != "" {
		o.progress(w)
	}
	if err := o.startDaemon(m); err != nil {
		return err
	}
	o.progress("daemon started; log: " + o.paths.DaemonLog())
	st, err := waitPhase(ctx, ctl, teleproto.ConnectPhase_CONNECT_PHASE_WAITING_FOR_DEVICE)
	if err != nil {
		return o.failed(ctx, ctl, err)
	}
	o.progress("creating TUN device " + st.GetDevice() + ", routes " + strings.Join(st.GetRoutes(), " ") + " and DNS settings (as root)")
	req, err := protojson.Marshal(st.GetHelperRequest())
	if err != nil {
		return o.failed(ctx, ctl, fmt.Errorf("encode the helper request: %w", err))
	}
	if err := runHelper(ctx, "up", req, o.paths, o.Streams.ErrOut); err != nil {
		return o.failed(ctx, ctl, err)
	}
	st, err = waitPhase(ctx, ctl, teleproto.ConnectPhase_CONNECT_PHASE_CONNECTED)
	if err != nil {
		return o.failed(ctx, ctl, err)
	}
	st = o.waitNameCheck(ctx, ctl, st)
	fmt.Fprintf(o.Streams.Out, "Connected to namespace %s of context %s: %s\n", st.GetNamespace(), st.GetContext(), namesSummary(st))
	for _, c := range st.GetDns().GetChecks() {
		if !c.GetOk() {
			fmt.Fprintf(o.Streams.ErrOut, "  warning: %s\n", nameCheckLine(c))
		}
	}
	return nil
}

// waitNameCheck waits a little for the daemon's first self-check of names
// (it runs once connected); without it, st as it is.
func (o *ConnectOptions) waitNameCheck(ctx context.Context, ctl *session.Control, st *teleproto.DaemonStatus) *teleproto.DaemonStatus {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = ctl.Watch(ctx, func(s *teleproto.DaemonStatus) (bool, error) {
		st = s
		return len(s.GetDns().GetChecks()) > 0 || s.GetPhase() != teleproto.ConnectPhase_CONNECT_PHASE_CONNECTED, nil
	})
	return st
}

// namesSummary says which name forms resolve here, from the self-check.
func namesSummary(st *teleproto.DaemonStatus) string {
	if len(st.GetDns().GetChecks()) == 0 {
		return fmt.Sprintf("names like my-service and my-service.%s should resolve here (the self-check did not finish: see kubectl tele status).", st.GetNamespace())
	}
	var ok, bad []string
	for _, c := range st.GetDns().GetChecks() {
		if c.GetOk() {
			ok = append(ok, c.GetName())
		} else {
			bad = append(bad, c.GetName())
		}
	}
	if len(bad) == 0 {
		return fmt.Sprintf("checked through this machine's resolver, %s all resolve.", strings.Join(ok, ", "))
	}
	if len(ok) == 0 {
		return fmt.Sprintf("but no name form resolves through this machine's resolver (tried %s).", strings.Join(bad, ", "))
	}
	return fmt.Sprintf("checked through this machine's resolver, %s resolve; %s do NOT.", strings.Join(ok, ", "), strings.Join(bad, ", "))
}

// idleTimeoutWarning says, when an idle timeout was asked for (from names
// where; "" when not) and the manager in use keeps another, that it is not
// applied and how to apply it: a running manager's is fixed by its Job.
func idleTimeoutWarning(from string, want time.Duration, m *managerclient.Manager) string {
	switch {
	case from == "", m.IdleTimeout == want:
		return ""
	case m.IdleTimeout == 0 && m.Created:
		return "" // its Job does not say, but this call made it with want
	}
	keeps := "its own idle timeout"
	if m.IdleTimeout != 0 {
		keeps += " (" + m.IdleTimeout.String() + ")"
	}
	return fmt.Sprintf("warning: %s %s is not applied: the traffic manager already running in namespace %s keeps %s; "+
		"to apply it, when nobody uses that manager, run kubectl tele quit, kubectl tele uninstall -n %s, then connect again",
		from, want, m.Namespace, keeps, m.Namespace)
}

// failed stops a daemon that could not finish connecting and undoes what the
// helper did, so nothing is left half-configured.
func (o *ConnectOptions) failed(ctx context.Context, ctl *session.Control, cause error) error {
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = ctl.Quit(qctx)
	if err := runHelper(qctx, "down", nil, o.paths, o.Streams.ErrOut); err != nil {
		cause = errors.Join(cause, err)
	}
	return fmt.Errorf("%w\n(daemon log: %s)", cause, o.paths.DaemonLog())
}

// repair undoes what a session that died (kill -9, reboot) left: its DNS
// settings and device.
func (o *ConnectOptions) repair(ctx context.Context) error {
	if len(leftovers()) == 0 {
		return nil
	}
	o.progress("a previous session ended without cleaning up: restoring DNS settings and removing its device")
	return runHelper(ctx, "down", nil, o.paths, o.Streams.ErrOut)
}

// leftovers lists what a dead session left that the helper's "down" repairs
// (its DNS backup, macOS /etc/resolver files, its device, its nameserver's
// fence), each as what repairing it does; none when there is nothing to do.
func leftovers() []string {
	var found []string
	if dir, err := helperStateDir(); err == nil {
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			found = append(found, "restored the DNS settings saved in "+dir)
		}
	}
	// Files with our marker (world-readable); Linux has no /etc/resolver.
	if ours, _ := resolver.NewResolverDir(resolver.Options{}).Ours(); len(ours) > 0 {
		found = append(found, "removed the resolver files "+strings.Join(ours, ", "))
	}
	if _, err := net.InterfaceByName(session.DeviceName); err == nil {
		found = append(found, "removed the TUN device "+session.DeviceName)
	}
	fenced, _ := device.Fences() // only a report
	for _, a := range fenced {
		found = append(found, "removed the route that fenced off its nameserver "+a.String())
	}
	return found
}

func (o *ConnectOptions) startDaemon(m *managerclient.Manager) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{"daemon",
		"--namespace=" + o.namespace,
		"--connect-context=" + o.contextName,
		"--manager-namespace=" + m.Namespace,
		"--manager-pod=" + m.Pod,
		"--manager-pod-uid=" + m.PodUID,
		"--manager-version=" + m.Version,
		"--manager-image=" + o.ManagerImage,
		"--manager-idle-timeout=" + o.IdleTimeout.String(),
		"--image-pull-secret=" + strings.Join(o.ImagePullSecrets, ","),
		fmt.Sprintf("--allow-conflicting-subnets=%t", o.AllowConflictingSubnets),
		"--device-addr=" + o.DeviceAddr,
		"--dns-namespace=" + strings.Join(o.DNSNamespaces, ","),
	}, o.kubeArgs...)
	for _, p := range o.also {
		args = append(args, "--also-proxy="+p.String())
	}
	for _, p := range o.never {
		args = append(args, "--never-proxy="+p.String())
	}
	logf, err := os.OpenFile(o.paths.DaemonLog(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("open daemon log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = detachedProcAttr() // outlives this command
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the daemon: %w", err)
	}
	return cmd.Process.Release()
}

// waitPhase watches the daemon until it reaches phase, or fails.
func waitPhase(ctx context.Context, ctl *session.Control, phase teleproto.ConnectPhase) (*teleproto.DaemonStatus, error) {
	var last, reached *teleproto.DaemonStatus
	err := ctl.Watch(ctx, func(st *teleproto.DaemonStatus) (bool, error) {
		last = st
		switch st.GetPhase() {
		case phase:
			reached = st
			return true, nil
		case teleproto.ConnectPhase_CONNECT_PHASE_FAILED:
			return true, errors.New(st.GetError())
		}
		return false, nil
	})
	if reached != nil {
		return reached, nil
	}
	if err != nil && ctx.Err() != nil {
		at := "not started"
		if last != nil {
			at = last.GetPhase().Label()
		}
		return nil, fmt.Errorf("waiting for the daemon to reach %s (it is %q): %w", phase.Label(), at, ctx.Err())
	}
	if err == nil {
		err = errors.New("the daemon exited")
	}
	return nil, err
}

// newCmdDaemon is the session daemon: connect starts it in the background.
func newCmdDaemon(flags *genericclioptions.ConfigFlags) *cobra.Command {
	var cfg session.Config
	var also, never []string
	var addr string
	cmd := &cobra.Command{
		Use:    "daemon",
		Short:  "Run the session daemon (started by connect)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Paths, err = session.DefaultPaths(); err != nil {
				return err
			}
			if cfg.RESTConfig, err = flags.ToRESTConfig(); err != nil {
				return err
			}
			if cfg.Client, err = kubernetes.NewForConfig(cfg.RESTConfig); err != nil {
				return err
			}
			if cfg.Namespace, _, err = flags.ToRawKubeConfigLoader().Namespace(); err != nil {
				return err
			}
			if cfg.AlsoProxy, err = parseCIDRs("--also-proxy", also); err != nil {
				return err
			}
			if cfg.NeverProxy, err = parseCIDRs("--never-proxy", never); err != nil {
				return err
			}
			if cfg.DeviceAddr, err = device.ParseAddr(addr); err != nil {
				return err
			}
			cfg.Version = version.Version
			cfg.UpdateDNS = func(ctx context.Context, req *teleproto.HelperRequest, mode string) error {
				b, err := protojson.Marshal(req)
				if err != nil {
					return err
				}
				// The daemon has no terminal: sudo -n, never a prompt.
				return runHelper(ctx, "dns", b, cfg.Paths, os.Stderr, "--mode="+mode) // stderr is the daemon log
			}
			// A soft limit: under load the Go heap otherwise grows to twice its
			// live size and keeps the pages; the daemon's live heap is a few MiB.
			debug.SetMemoryLimit(48 << 20)
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("pid", os.Getpid())
			cfg.Logger.Info("daemon starting", "version", version.Version, "namespace", cfg.Namespace, "manager", cfg.Manager.Pod)
			err = session.Run(cmd.Context(), cfg)
			cfg.Logger.Info("daemon exiting", "err", err)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Context, "connect-context", "", "kubeconfig context name, for status")
	f.StringVar(&cfg.Manager.Namespace, "manager-namespace", "", "")
	f.StringVar(&cfg.Manager.Pod, "manager-pod", "", "")
	f.StringVar(&cfg.Manager.PodUID, "manager-pod-uid", "", "")
	f.StringVar(&cfg.Manager.Version, "manager-version", "", "")
	f.StringVar(&cfg.ManagerImage, "manager-image", version.Image(), "")
	f.StringSliceVar(&cfg.ImagePullSecrets, "image-pull-secret", nil, "")
	f.DurationVar(&cfg.ManagerIdleTimeout, "manager-idle-timeout", defaultIdleTimeout, "")
	f.StringSliceVar(&also, "also-proxy", nil, "")
	f.StringSliceVar(&never, "never-proxy", nil, "")
	f.BoolVar(&cfg.AllowConflictingSubnets, "allow-conflicting-subnets", false, "")
	f.StringVar(&addr, "device-addr", device.DefaultAddr.Addr().String(), "")
	f.StringSliceVar(&cfg.DNSNamespaces, "dns-namespace", nil, "")
	return cmd
}
