package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-tele/kubectl-tele/pkg/session"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// StatusOptions holds the flags of kubectl tele status.
type StatusOptions struct {
	Streams genericiooptions.IOStreams
	Output  string
}

// NewCmdStatus builds kubectl tele status.
func NewCmdStatus(_ *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{Streams: streams}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the session: context, namespace, manager, device, routes, DNS and log files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Output != "" && o.Output != "json" && o.Output != "yaml" {
				return usagef("--output %q: use json or yaml", o.Output)
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json or yaml")
	return cmd
}

// Run prints the status.
func (o *StatusOptions) Run(ctx context.Context) error {
	paths, err := session.DefaultPaths()
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ctl := session.NewControl(paths.ControlSocket())
	defer ctl.Close()
	st, err := ctl.CheckedStatus(sctx)
	var repaired []string
	if errors.Is(err, session.ErrNotRunning) {
		st = &teleproto.DaemonStatus{Phase: teleproto.ConnectPhase_CONNECT_PHASE_DISCONNECTED, LogFile: paths.DaemonLog(), HelperLogFile: paths.HelperLog()}
		// No daemon, yet its DNS settings or device may be left: a crashed
		// session's resolv.conf sends every lookup to a server that is no
		// longer there first. status is what a user runs when names stop
		// resolving, so it repairs that, as quit would (sudo may ask for
		// a password; the helper's own timeout is quit's).
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if repaired, err = repairCrashed(rctx, paths, o.Streams.ErrOut); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if o.Output != "" {
		doc, err := statusDocument(st, repaired)
		if err != nil {
			return err
		}
		_, err = printStructured(o.Streams.Out, o.Output, doc)
		return err
	}
	w := tabwriter.NewWriter(o.Streams.Out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	if st.GetPhase() == teleproto.ConnectPhase_CONNECT_PHASE_DISCONNECTED {
		fmt.Fprintln(w, disconnectedMessage(repaired))
		fmt.Fprintf(w, "Daemon log:\t%s\nHelper log:\t%s\n", st.GetLogFile(), st.GetHelperLogFile())
		return nil
	}
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	dns := st.GetDns()
	row("Status", st.GetPhase().Label())
	row("Error", st.GetError())
	row("Context", st.GetContext())
	row("API server", st.GetServer())
	row("Namespace", st.GetNamespace())
	if st.GetIdentity() != "" {
		row("Identity", st.GetIdentity()+" (proven to the manager by "+st.GetProvenBy()+")")
	}
	row("Manager", st.GetManagerNamespace()+"/"+st.GetManagerPod()+" (version "+st.GetManagerVersion()+")")
	row("Client version", st.GetClientVersion())
	row("Warning", daemonSkew(st))
	row("Device", st.GetDevice())
	row("Routes", strings.Join(st.GetRoutes(), " "))
	row("DNS", fmt.Sprintf("%s via %s, search %s", dns.GetMode(), dns.GetNameserver(), strings.Join(dns.GetSearch(), " ")))
	if dns.GetMode() != "" && dns.GetMode() != "resolv.conf" {
		row("Routing domains", routingLine(dns))
	}
	row("Warning", dns.GetUpdateError())
	for _, c := range dns.GetChecks() {
		row("Names", nameCheckLine(c))
	}
	// Your intercepts, each with the requests it takes; list shows
	// everyone's. Only a connected session can ask the manager.
	if st.GetPhase() == teleproto.ConnectPhase_CONNECT_PHASE_CONNECTED {
		ics, err := ctl.List(sctx)
		if err != nil {
			row("Intercepts", "unknown: "+err.Error())
		}
		for _, ic := range ics {
			if ic.GetMine() {
				row("Intercept", interceptLine(ic))
			}
		}
	}
	for _, m := range st.GetMounts() {
		row("Mount", mountRow(m))
	}
	row("Daemon PID", fmt.Sprint(st.GetPid()))
	row("Since", st.GetSince())
	row("Daemon log", st.GetLogFile())
	row("Helper log", st.GetHelperLogFile())
	row("Control socket", st.GetControlSocket())
	return nil
}

// routingLine says which names go to the session on a split-DNS resolver.
func routingLine(d *teleproto.SessionDNS) string {
	s := strings.Join(d.GetRoutingDomains(), " ")
	if d.GetNamespacesFrom() == "config" {
		s += " (namespaces from the config: you may not list namespaces; add others with dnsNamespaces or --dns-namespace)"
	}
	if len(d.GetPublicNamespaces()) > 0 {
		s += fmt.Sprintf("; left out as public top-level domains: %s (use NAME.NS.svc for them)", strings.Join(d.GetPublicNamespaces(), " "))
	}
	return s
}

// nameCheckLine is one name form of the self-check, for people.
func nameCheckLine(c *teleproto.NameCheck) string {
	if c.GetOk() {
		return fmt.Sprintf("%s (%s) resolves: %s", c.GetForm(), c.GetName(), c.GetDetail())
	}
	return fmt.Sprintf("%s (%s) does NOT resolve through this machine's resolver: %s; %s", c.GetForm(), c.GetName(), c.GetDetail(), c.GetHint())
}

// interceptLine is one of status's Intercept rows.
func interceptLine(ic *teleproto.Intercept) string {
	what := describeMatch(ic.GetHttpMatch())
	if ic.GetKind() == teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP {
		what = "copies of " + what // the pods still answer them
	}
	return fmt.Sprintf("%s: %s to %s/%s port %d reach localhost:%d", ic.GetName(), what,
		strings.ToLower(ic.GetWorkloadKind()), ic.GetWorkloadName(), ic.GetPort(), ic.GetLocalPort())
}

// disconnectedMessage is status's first line with no daemon running: what
// it repaired of a session that died (repairCrashed), if anything.
func disconnectedMessage(repaired []string) string {
	if len(repaired) == 0 {
		return "Not connected."
	}
	return "Not connected. A session ended without quit (its daemon died) and left its settings; repaired: " + strings.Join(repaired, "; ") + "."
}

// mountRow is one of status's Mount rows: an intercept's --mount folder,
// its volumes, and why each one that is not under it is not.
func mountRow(m *teleproto.MountStatus) string {
	var parts []string
	for _, v := range m.GetVolumes() {
		p := fmt.Sprintf("%s (%s %s)", v.GetPath(), v.GetKind(), v.GetName())
		if v.GetNotProvided() != "" {
			p += " NOT MOUNTED: " + v.GetNotProvided()
		}
		parts = append(parts, p)
	}
	return fmt.Sprintf("%s: %s, volumes of pod %s: %s", m.GetIntercept(), m.GetDir(), m.GetPod(), strings.Join(parts, "; "))
}
