package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-tele/kubectl-tele/pkg/session"
	"github.com/kubectl-tele/kubectl-tele/pkg/target"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// NewCmdList builds kubectl tele list.
func NewCmdList(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var onlyIntercepted bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the connected namespace's workloads and their intercepts",
		Long: `List the workloads of the connected namespace that kubectl tele can intercept
(Deployments, StatefulSets, and ReplicaSets and Pods that nothing else
controls), with their ready pods, their TCP ports, and one line per
intercept: its name, port, match, local port, mechanism, owner, pods, kind
(intercept or wiretap) and, for a wiretap, the copies its agents sent to
the laptop and dropped. Every developer's intercepts are listed, yours
marked (you); names are per developer, so two rows may share one.`,
		Example: `  kubectl tele list
  kubectl tele list --intercepts`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctl, err := session.DefaultControl()
			if err != nil {
				return err
			}
			defer ctl.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			st, err := ctl.Status(ctx)
			if errors.Is(err, session.ErrNotRunning) {
				return errors.New("not connected: run kubectl tele connect -n NAMESPACE first")
			} else if err != nil {
				return err
			}
			ics, err := ctl.List(ctx)
			if err != nil {
				return err
			}
			ws, err := listWorkloadSummaries(ctx, flags, st.Namespace)
			if err != nil { // one line per kind that could not be listed
				for _, line := range strings.Split(err.Error(), "\n") {
					fmt.Fprintf(streams.ErrOut, "warning: %s\n", line)
				}
			}
			if writeList(streams.Out, ws, ics, onlyIntercepted) == 0 {
				what := "workloads"
				if onlyIntercepted {
					what = "intercepts"
				}
				fmt.Fprintf(streams.ErrOut, "No %s in namespace %s.\n", what, st.Namespace)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&onlyIntercepted, "intercepts", "i", false, "only the workloads with intercepts")
	return cmd
}

func listWorkloadSummaries(ctx context.Context, flags *genericclioptions.ConfigFlags, ns string) ([]target.Summary, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return target.List(ctx, client, ns)
}

// writeList prints one row per intercept, and one per workload without any
// unless onlyIntercepted; it returns how many rows it printed.
func writeList(out io.Writer, ws []target.Summary, ics []*teleproto.Intercept, onlyIntercepted bool) int {
	byWorkload := map[string][]*teleproto.Intercept{}
	key := func(kind, name string) string { return strings.ToLower(kind) + "/" + name }
	for _, ic := range ics {
		k := key(ic.GetWorkloadKind(), ic.GetWorkloadName())
		byWorkload[k] = append(byWorkload[k], ic)
	}
	type row struct {
		workload, ready, ports string
		ics                    []*teleproto.Intercept
	}
	var rows []row
	for _, w := range ws {
		k := key(w.Kind, w.Name)
		ports := strings.Join(w.Ports, ",")
		if ports == "" {
			ports = "-"
		}
		rows = append(rows, row{k, fmt.Sprintf("%d/%d", w.Ready, w.Want), ports, byWorkload[k]})
		delete(byWorkload, k)
	}
	for _, ic := range ics { // workloads the listing did not show
		k := key(ic.GetWorkloadKind(), ic.GetWorkloadName())
		if left, ok := byWorkload[k]; ok {
			rows = append(rows, row{k, "?", "?", left})
			delete(byWorkload, k)
		}
	}

	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	n := 0
	for _, r := range rows {
		if len(r.ics) == 0 && onlyIntercepted {
			continue
		}
		if n == 0 {
			fmt.Fprintln(w, "WORKLOAD\tREADY\tPORTS\tINTERCEPT\tPORT\tMATCH\tLOCAL\tMECHANISM\tOWNER\tPODS\tKIND\tCOPIES")
		}
		if len(r.ics) == 0 {
			fmt.Fprintf(w, "%s\t%s\t%s\t-\t\t\t\t\t\t\t\t\n", r.workload, r.ready, r.ports)
			n++
		}
		for _, ic := range r.ics {
			m := matchColumn(ic.GetHttpMatch()) + tlsColumn(ic)
			owner := ic.Who()
			if ic.GetMine() {
				owner += " (you)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.workload, r.ready, r.ports,
				ic.GetName(), ic.GetPort(), m, ic.GetLocalPort(), ic.GetMech().Word(), owner, coveredPods(ic), kindColumn(ic), copiesColumn(ic))
			n++
		}
	}
	return n
}

// coveredPods says how many of the intercept's running pods its agents
// serve it on, and names the others (pods of a rollout that their agents
// are joining): their requests reach the app whatever they carry.
func coveredPods(ic *teleproto.Intercept) string {
	n, left := len(ic.GetPods()), ic.GetUncoveredPods()
	s := fmt.Sprintf("%d/%d", n, n+len(left))
	if len(left) > 0 {
		s += " (joining: " + strings.Join(left, ",") + ")"
	}
	return s
}
