package plugin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-tele/kubectl-tele/pkg/session"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// completionTimeout bounds every lookup a completion makes: a shell waiting
// on <TAB> for an unreachable cluster or a stuck daemon is worse than no
// suggestions.
var completionTimeout = 5 * time.Second

// completionClient builds the client that completions list namespaces and
// workloads with. Tests replace it with a fake.
var completionClient = func(flags *genericclioptions.ConfigFlags) (kubernetes.Interface, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = completionTimeout
	return kubernetes.NewForConfig(cfg)
}

// completionIntercepts lists the session's intercepts for leave's
// completion. Tests replace it.
var completionIntercepts = func(ctx context.Context) ([]*teleproto.Intercept, error) {
	ctl, err := session.DefaultControl()
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	return ctl.List(ctx)
}

// NewCmdCompletion builds kubectl tele completion.
func NewCmdCompletion(streams genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print a shell completion script.

kubectl (1.26 and later) completes "kubectl tele ..." itself, with its own
completion script, by running the executable kubectl_complete-tele from PATH.
make install puts it next to kubectl-tele; krew unpacks it but links only
kubectl-tele, so after kubectl krew install tele copy it once:

  cp "${KREW_ROOT:-$HOME/.krew}"/store/tele/*/kubectl_complete-tele "${KREW_ROOT:-$HOME/.krew}/bin/"

Then this is all it takes (bash):

  source <(kubectl completion bash)

The script printed here completes the kubectl-tele executable when it is run
directly, as kubectl-tele ... rather than kubectl tele ...`,
		Example: `  source <(kubectl-tele completion bash)
  kubectl-tele completion zsh > "${fpath[1]}/_kubectl-tele"
  kubectl-tele completion fish > ~/.config/fish/completions/kubectl-tele.fish
  kubectl-tele completion powershell | Out-String | Invoke-Expression`,
		ValidArgs:             []string{"bash", "zsh", "fish", "powershell"},
		Args:                  cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), streams.Out
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			default:
				return root.GenPowerShellCompletionWithDesc(out)
			}
		},
	}
}

// registerCompletions adds the completions of the root's persistent flags.
func registerCompletions(root *cobra.Command, flags *genericclioptions.ConfigFlags) {
	// Errors here mean the flag does not exist, a programming error that the
	// tests catch; completion is a convenience, so never fail the command.
	_ = root.RegisterFlagCompletionFunc("namespace", completeNamespaces(flags))
	_ = root.RegisterFlagCompletionFunc("context", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		cfg, err := flags.ToRawKubeConfigLoader().RawConfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names := make([]string, 0, len(cfg.Contexts))
		for name := range cfg.Contexts {
			names = append(names, name)
		}
		slices.Sort(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	})
}

// completeNamespaces lists the cluster's namespaces.
func completeNamespaces(flags *genericclioptions.ConfigFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		ctx, cancel := context.WithTimeout(commandContext(cmd), completionTimeout)
		defer cancel()
		client, err := completionClient(flags)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		list, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, ns := range list.Items {
			names = appendPrefixed(names, ns.Name, toComplete)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeWorkloads lists what intercept accepts in the namespace the
// command line names: deployment/NAME, statefulset/NAME, replicaset/NAME and
// pod/NAME. A kubectl short form typed so far (deploy/, sts/, rs/, po/) is
// kept, so "sts/d<TAB>" becomes "sts/db".
func completeWorkloads(flags *genericclioptions.ConfigFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		// Past -- and the command's name: its arguments (intercept --
		// CMD ARGS), the shell's to complete, files included. cobra
		// completes as if a -- followed what was typed, so ArgsLenAtDash
		// equals len(args) with no -- typed, and a -- just typed ("-- "
		// then TAB) cannot be told from none: the command's name itself
		// gets nothing, as TYPE/NAME's arguments do.
		if dash := cmd.ArgsLenAtDash(); dash >= 0 && dash < len(args) {
			return nil, cobra.ShellCompDirectiveDefault
		}
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		client, err := completionClient(flags)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(commandContext(cmd), completionTimeout)
		defer cancel()

		// Which kinds to list, and the TYPE to print them with.
		kinds := []string{"deployment", "statefulset", "replicaset", "pod"}
		prefix := map[string]string{}
		if typ, _, ok := strings.Cut(toComplete, "/"); ok {
			kind, known := workloadAliases[strings.ToLower(typ)]
			if !known {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			kinds, prefix[kind] = []string{kind}, typ
		}
		var out []string
		for _, kind := range kinds {
			names, err := listWorkloads(ctx, client, ns, kind)
			if err != nil {
				// One kind forbidden or timed out: offer the others.
				continue
			}
			typ := kind
			if p, ok := prefix[kind]; ok {
				typ = p
			}
			for _, n := range names {
				out = appendPrefixed(out, typ+"/"+n, toComplete)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// workloadAliases maps the TYPE forms kubectl accepts for the kinds intercept
// supports to the kind's singular name.
var workloadAliases = map[string]string{
	"deploy": "deployment", "deployment": "deployment", "deployments": "deployment", "deployments.apps": "deployment",
	"sts": "statefulset", "statefulset": "statefulset", "statefulsets": "statefulset", "statefulsets.apps": "statefulset",
	"rs": "replicaset", "replicaset": "replicaset", "replicasets": "replicaset", "replicasets.apps": "replicaset",
	"po": "pod", "pod": "pod", "pods": "pod",
}

func listWorkloads(ctx context.Context, client kubernetes.Interface, ns, kind string) ([]string, error) {
	var names []string
	switch kind {
	case "deployment":
		l, err := client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case "statefulset":
		l, err := client.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case "replicaset":
		l, err := client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case "pod":
		l, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	default:
		return nil, fmt.Errorf("list %s: not a kind intercept supports", kind)
	}
	slices.Sort(names)
	return names, nil
}

// completeIntercepts lists the session's own intercepts, for leave: the
// list holds everyone's, and leave refuses another's.
func completeIntercepts(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(commandContext(cmd), completionTimeout)
	defer cancel()
	ics, err := completionIntercepts(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, ic := range ics {
		if ic.GetMine() {
			names = appendPrefixed(names, ic.GetName(), toComplete)
		}
	}
	slices.Sort(names)
	return names, cobra.ShellCompDirectiveNoFileComp
}

// appendPrefixed appends s when it starts with prefix. Shells filter too, but
// kubectl passes a plugin's completions through as they are.
func appendPrefixed(list []string, s, prefix string) []string {
	if strings.HasPrefix(s, prefix) {
		return append(list, s)
	}
	return list
}

// commandContext is the command's context; cobra leaves it nil when the
// command runs without ExecuteContext.
func commandContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
