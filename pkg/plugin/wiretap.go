package plugin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-tele/kubectl-tele/pkg/target"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// NewCmdWiretap builds kubectl tele wiretap: an intercept of kind WIRETAP,
// with intercept's options, filters and checks.
func NewCmdWiretap(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &InterceptOptions{Flags: flags, Streams: streams, EnvSyntax: string(target.EnvSyntaxDotenv), kind: teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP}
	cmd := &cobra.Command{
		Use:   "wiretap TYPE/NAME --port LOCAL[:REMOTE] [--http-match NAME=VALUE]... [--http-path PATH] [--http-method METHOD] [-- CMD [ARGS...]]",
		Short: "Send copies of a workload's requests to a process on this machine",
		Long: `Wiretap a workload of the connected namespace: its pods still answer every
request on the port, and a copy of each matching request (all of them without
filters) goes to localhost:LOCAL on this machine. Your server's answers are
read and thrown away. The filters are intercept's: --http-match,
--http-path, --http-path-prefix, --http-path-regex and --http-method, all of
which must match.

Copies never slow or fail the real requests: each pod's agent keeps at most
64 copies waiting for your laptop, and a copy carries a body of up to 64 KiB.
A copy that would not fit (a full queue, a bigger body, your server down or
slow) is dropped; kubectl tele list shows, per wiretap, the copies sent and
dropped.

Wiretaps never conflict: several developers may wiretap a port that others
intercept, and an intercept's requests are copied to the wiretaps that match
them too. A port intercepted whole (an intercept without filters) carries
raw connections to its laptop, and wiretaps see none of them. End a wiretap
with kubectl tele leave NAME.

--mount DIR puts the container's volumes under DIR, as with intercept.

With -- CMD [ARGS...], as with intercept: CMD runs with the container's
environment, TELE_INTERCEPT set to the wiretap's name and, with --mount,
TELE_ROOT set to DIR; the wiretap ends
when CMD exits, and kubectl tele exits with CMD's status.`,
		Example: `  kubectl tele wiretap deploy/my-service --port 8080
  kubectl tele wiretap deploy/my-service --port 9090:8080 --http-path-prefix /api/orders/ --http-method POST
  kubectl tele wiretap deploy/my-service --name tap --port 9090:http --http-match x-dev=alice
  kubectl tele wiretap deploy/my-service --port 9090:8080 -- ./my-service --listen :9090`,
		Args:              interceptArgs,
		ValidArgsFunction: completeWorkloads(flags),
		RunE:              o.runE,
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "name of the wiretap, unique among your intercepts and wiretaps (default: the workload's name)")
	f.StringVar(&o.Port, "port", "", "LOCAL[:REMOTE]: the local port, and the container port (number, name, or Service port name) to copy requests of")
	f.StringVar(&o.Container, "container", "", "the container whose port to wiretap (default: the one declaring the port, or the only one)")
	o.addMatchFlags(f)
	o.addMountFlag(f)
	f.StringVar(&o.Mechanism, "mechanism", "", "how traffic reaches the agent: nftables or service (default: nftables where Pod Security allows NET_ADMIN)")
	f.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "give up after this long")
	return cmd
}

// verb names what the options create, for messages.
func (o *InterceptOptions) verb() string {
	if o.kind == teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP {
		return "wiretap"
	}
	return "intercept"
}

// doing is verb's -ing form, for progress lines.
func (o *InterceptOptions) doing() string {
	if o.kind == teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP {
		return "wiretapping"
	}
	return "intercepting"
}

// reportWiretap tells the user what a new wiretap does.
func (o *InterceptOptions) reportWiretap(ctx context.Context, ic *teleproto.Intercept, kind, name string) {
	fmt.Fprintf(o.report(), "Wiretap %s: copies of %s to %s/%s port %d now reach localhost:%d; the pods still answer them (mechanism %s, pods %s).\n",
		ic.GetName(), describeMatch(ic.GetHttpMatch()), strings.ToLower(kind), name, ic.GetPort(), ic.GetLocalPort(), ic.GetMech().Word(), strings.Join(ic.GetPods(), ", "))
	if left := ic.GetUncoveredPods(); len(left) > 0 {
		fmt.Fprintf(o.Streams.ErrOut, "Warning: no copies from %s yet: their agent is joining.\n", strings.Join(left, ", "))
	}
	if note := bypassNote(ic, false); note != "" {
		fmt.Fprintln(o.Streams.ErrOut, note)
	}
	if len(o.command) == 0 {
		warnIfNothingListens(ctx, o.Streams.ErrOut, int(ic.GetLocalPort()), "copies are dropped until your server does")
	}
}

// kindColumn is list's KIND: intercept or wiretap.
func kindColumn(ic *teleproto.Intercept) string {
	if ic.GetKind() == teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP {
		return "wiretap"
	}
	return "intercept"
}

// copiesColumn is list's COPIES: a wiretap's copies sent and dropped.
func copiesColumn(ic *teleproto.Intercept) string {
	if ic.GetKind() != teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP {
		return "-"
	}
	return fmt.Sprintf("%d sent, %d dropped", ic.GetCopiesSent(), ic.GetCopiesDropped())
}
