package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-tele/kubectl-tele/pkg/match"
	"github.com/kubectl-tele/kubectl-tele/pkg/session"
	"github.com/kubectl-tele/kubectl-tele/pkg/target"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// InterceptOptions holds the flags of kubectl tele intercept.
type InterceptOptions struct {
	Flags   *genericclioptions.ConfigFlags
	Streams genericiooptions.IOStreams

	Name      string
	Port      string
	Container string
	HTTPMatch []string
	// Path and method filters, each given at most once (onceString): a
	// request has one path and one method, and every filter must match.
	HTTPPath       onceString
	HTTPPathPrefix onceString
	HTTPPathRegex  onceString
	HTTPMethod     onceString
	EnvFile        string
	EnvSyntax      string // of EnvFile: one of target.EnvSyntaxes
	EnvJSON        string
	Mechanism      string
	Timeout        time.Duration
	// ResetIdle resets the idle connections that were open to the port
	// before the redirect, so their clients reconnect through the agent.
	ResetIdle bool
	// TLSSecret names the kubernetes.io/tls Secret whose certificate the
	// agents terminate the clients' TLS with; LocalTLS sends the matching
	// requests to the local server over TLS (see intercepttls.go).
	TLSSecret string
	LocalTLS  bool
	// Mount is the folder the container's volumes appear under (--mount).
	Mount string

	workloadArg string
	// command is the command line after --, run in the intercept, which
	// ends with it; commandPath is its executable, found before the
	// intercept is made.
	command     []string
	commandPath string
	mountDir    string // Mount, absolute
	namespace   string
	client      kubernetes.Interface
	port        target.PortSpec
	envSyntax   target.EnvSyntax
	terms       []string // the match terms sent, in package match's grammar
	ctl         *session.Control
	kind        teleproto.InterceptKind // UNSPECIFIED: an intercept
	mech        teleproto.Mechanism     // Mechanism's; UNSPECIFIED: the manager chooses
}

// NewCmdIntercept builds kubectl tele intercept.
func NewCmdIntercept(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &InterceptOptions{Flags: flags, Streams: streams}
	cmd := &cobra.Command{
		Use:   "intercept TYPE/NAME --port LOCAL[:REMOTE] [--http-match NAME=VALUE]... [--http-path PATH] [--http-method METHOD] [-- CMD [ARGS...]]",
		Short: "Send a workload's requests to a process on this machine",
		Long: `Intercept a workload of the connected namespace: the requests its pods receive
on the intercepted port go to localhost:LOCAL on this machine. With
--http-match, only requests whose headers match do; every other request still
reaches the real pods. Nothing in the cluster is restarted: a traffic agent
joins each pod as an ephemeral container.

--http-path, --http-path-prefix and --http-path-regex select requests by path,
--http-method by method; with --http-match, every filter given must match.
The path is compared as the client sent it, without the query string and not
percent-decoded (/a%2Fb is not /a/b; write /caf%C3%A9, not /café); the
method case-sensitively (POST, not post). A gRPC call's path is its method,
/package.Service/Method: --http-path routes one method, --http-path-prefix
/package.Service/ a whole service. kubectl tele list shows the filters as
terms: :path=PATH, :path^=PREFIX, :path~=REGEX, :method=METHOD.

--env-file FILE writes the intercepted container's environment (its env,
envFrom, ConfigMap and Secret values, downward API fields and Service
variables) to FILE, readable only by you, in the syntax --env-syntax names:
dotenv (NAME=VALUE, quoted where dotenv readers need it), docker (for docker
run --env-file: no quoting, so multi-line values are left out), sh (export
lines for . FILE in any POSIX shell) or powershell (for . FILE in PowerShell).
A variable the syntax cannot carry is left out with a warning naming it;
--env-json writes every one.

A port where the app serves TLS itself: with --tls-secret NAME (a
kubernetes.io/tls Secret of the namespace holding the certificate the app's
clients expect, which intercept reads with your credentials), the agents
terminate TLS with it and match requests as in cleartext; the others reach
the app over TLS again, and the matching ones your local server in
cleartext, or over TLS with --local-tls (your server's own certificate, e.g.
self-signed, is not verified). Without --tls-secret, filters cannot see
inside TLS and intercept refuses them on a TLS port; without filters the
whole port comes to your server, which must speak TLS itself.

An intercept's name is yours: it is unique among your intercepts, not the
namespace's, so teammates intercepting one workload with their own
--http-match each get one named after it, and each ends theirs with
kubectl tele leave NAME.

--mount DIR puts the container's volumes under DIR at the container's own
paths (DIR/etc/app/config.yaml), read with your credentials and kept current
while the intercept lasts: configMap, secret, downwardAPI and projected
volumes, the ServiceAccount token included (requested for the pod, and
renewed as the kubelet renews it). Volumes whose files live on the node or
in storage (emptyDir, persistentVolumeClaim, hostPath) are named, with why,
and not mounted. Files keep the pod's mode for you alone (0644 becomes
0600); DIR must be new or empty, and its contents are removed when the
intercept ends.

With -- CMD [ARGS...], intercept makes the intercept, then runs CMD on this
machine with the container's environment (as --env-file resolves it) over
your own, TELE_INTERCEPT set to the intercept's name, and, with --mount,
TELE_ROOT set to DIR; CMD has the
terminal (standard input, output and error). The intercept ends when CMD
exits, and kubectl tele exits with CMD's status. Ctrl-C goes to CMD, which
decides when to exit (SIGTERM sent to kubectl tele is passed on to it too);
the intercept ends after it has. If the intercept cannot be made, CMD does
not run.`,
		Example: `  kubectl tele intercept deploy/my-service --port 8080 --http-match x-dev=alice
  kubectl tele intercept deploy/my-service --port 8080 --http-path-prefix /api/orders/ --http-method POST
  kubectl tele intercept deploy/grpc-api --port 9000 --http-path /orders.v1.Orders/Create --http-match x-dev=alice
  kubectl tele intercept deploy/web --port 8443:https --tls-secret web-tls --http-match x-dev=alice
  kubectl tele intercept sts/db-api --port 3000:http --env-file api.env
  kubectl tele intercept deploy/my-service --port 8080 --env-file my-service.sh --env-syntax sh && . ./my-service.sh
  kubectl tele intercept deploy/my-service --port 8080 --http-match x-dev=alice -- go run ./cmd/my-service
  kubectl tele intercept deploy/my-service --port 8080 --http-match x-dev=alice --mount /tmp/my-service -- sh -c 'CONFIG=$TELE_ROOT/etc/app/config.yaml exec ./my-service'`,
		Args:              interceptArgs,
		ValidArgsFunction: completeWorkloads(flags),
		RunE:              o.runE,
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "name of the intercept, unique among yours (default: the workload's name)")
	f.StringVar(&o.Port, "port", "", "LOCAL[:REMOTE]: the local port, and the container port (number, name, or Service port name) to intercept")
	f.StringVar(&o.Container, "container", "", "the container whose port to intercept (default: the one declaring the port, or the only one)")
	o.addMatchFlags(f)
	f.StringVar(&o.EnvFile, "env-file", "", "write the intercepted container's environment here, in the syntax --env-syntax names")
	f.StringVar(&o.EnvSyntax, "env-syntax", string(target.EnvSyntaxDotenv), "the syntax of --env-file: dotenv (NAME=VALUE, quoted where needed), docker (docker run --env-file: no quoting), sh (export NAME='VALUE', for . FILE) or powershell ($Env:NAME = 'VALUE', for . FILE)")
	_ = cmd.RegisterFlagCompletionFunc("env-syntax", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		names := make([]string, len(target.EnvSyntaxes))
		for i, s := range target.EnvSyntaxes {
			names[i] = string(s)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	f.StringVar(&o.EnvJSON, "env-json", "", "write the intercepted container's environment here as JSON")
	f.StringVar(&o.Mechanism, "mechanism", "", "how traffic reaches the agent: nftables or service (default: nftables where Pod Security allows NET_ADMIN)")
	f.BoolVar(&o.ResetIdle, "reset-idle-connections", false, "reset the connections to the port that were open before the intercept and idle for 1s, so their clients (pooled HTTP, gRPC) reconnect through it (nftables mechanism)")
	f.StringVar(&o.TLSSecret, "tls-secret", "", "a kubernetes.io/tls Secret with the certificate the app's clients expect: the agents terminate TLS with it, so filters apply to a port where the app serves TLS")
	f.BoolVar(&o.LocalTLS, "local-tls", false, "with --tls-secret: send the matching requests to the local server over TLS (its certificate is not verified) instead of cleartext")
	o.addMountFlag(f)
	f.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "give up after this long")
	return cmd
}

// runE is the commands' RunE: Complete, Validate, Run.
func (o *InterceptOptions) runE(cmd *cobra.Command, args []string) error {
	args, o.command = splitAtDash(args, cmd.ArgsLenAtDash())
	if err := o.Complete(args); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	return o.Run(cmd.Context())
}

// addMatchFlags binds the flags that choose which requests the intercept
// takes.
func (o *InterceptOptions) addMatchFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&o.HTTPMatch, "http-match", nil, "only requests with this header: NAME=VALUE or NAME~=REGEX (repeatable: all must match)")
	f.Var(&o.HTTPPath, "http-path", "only requests for exactly this path (without the query string, as sent: not percent-decoded); a gRPC method is /package.Service/Method")
	f.Var(&o.HTTPPathPrefix, "http-path-prefix", "only requests whose path starts with this (e.g. /api/, or /package.Service/ for a gRPC service)")
	f.Var(&o.HTTPPathRegex, "http-path-regex", "only requests whose path this regular expression matches in full (Go RE2 syntax)")
	f.Var(&o.HTTPMethod, "http-method", "only requests with this method (case-sensitive: POST, not post)")
}

// Complete resolves what comes from kubeconfig and the daemon.
func (o *InterceptOptions) Complete(args []string) error {
	o.workloadArg = args[0]
	var err error
	if o.ctl, err = session.DefaultControl(); err != nil {
		return err
	}
	if o.namespace, _, err = o.Flags.ToRawKubeConfigLoader().Namespace(); err != nil {
		return err
	}
	cfg, err := o.Flags.ToRESTConfig()
	if err != nil {
		return err
	}
	o.client, err = kubernetes.NewForConfig(cfg)
	return err
}

// Validate rejects bad flags before anything changes in the cluster.
func (o *InterceptOptions) Validate() error {
	if o.Port == "" {
		return usagef("--port is required: --port LOCAL[:REMOTE], e.g. --port 8080")
	}
	var err error
	if o.port, err = target.ParsePort(o.Port); err != nil {
		return usageError{err}
	}
	if o.terms, err = o.matchTerms(); err != nil {
		return usageError{err}
	}
	var known bool
	if o.mech, known = teleproto.MechanismOfWord(o.Mechanism); !known {
		return usagef("--mechanism %q: use %s", o.Mechanism, strings.Join(mechanismWords(), " or "))
	}
	if o.LocalTLS && o.TLSSecret == "" {
		return usagef("--local-tls needs --tls-secret NAME: without it the agents do not terminate TLS, and a TLS port reaches your server whole, in TLS already")
	}
	if o.envSyntax, err = target.ParseEnvSyntax(o.EnvSyntax); err != nil {
		return usagef("--env-syntax: %w", err)
	}
	if o.EnvFile == "" && o.envSyntax != target.EnvSyntaxDotenv {
		return usagef("--env-syntax %s is the syntax of --env-file: add --env-file FILE", o.envSyntax)
	}
	if err := o.validateMount(); err != nil {
		return err
	}
	if len(o.command) > 0 {
		// Before the intercept: a typo must not leave one behind.
		if o.commandPath, err = exec.LookPath(o.command[0]); err != nil {
			return usagef("the command after --: %w", err)
		}
	}
	return nil
}

// Run creates the intercept through the session's daemon; with a command
// after --, it then runs the command in it, and ends the intercept after.
func (o *InterceptOptions) Run(ctx context.Context) error {
	defer o.ctl.Close()
	ic, env, err := o.create(ctx)
	if err != nil || len(o.command) == 0 {
		return err
	}
	return o.runCommand(ctx, ic.GetName(), commandEnv(os.Environ(), env, ic.GetName(), o.mountDir))
}

// create creates the intercept, bounded by --timeout, and returns it with
// the container's environment when the flags or the command need it.
func (o *InterceptOptions) create(ctx context.Context) (*teleproto.Intercept, []target.EnvVar, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	st, err := o.ctl.Status(ctx)
	if errors.Is(err, session.ErrNotRunning) {
		return nil, nil, fmt.Errorf("not connected: run kubectl tele connect -n %s first", o.namespace)
	} else if err != nil {
		return nil, nil, err
	}
	if w := daemonSkew(st); w != "" {
		fmt.Fprintf(o.Streams.ErrOut, "Warning: %s\n", w)
	}
	ns := st.Namespace
	w, err := target.Resolve(ctx, o.Flags, ns, o.workloadArg)
	if err != nil {
		return nil, nil, err
	}
	t, warnings, err := target.ResolvePort(ctx, o.client, w, o.port.Remote, o.Container)
	if err != nil {
		return nil, nil, err
	}
	for _, wmsg := range warnings {
		fmt.Fprintln(o.Streams.ErrOut, "warning:", wmsg)
	}
	cert, err := o.checkTLS(ctx, w, t)
	if err != nil {
		return nil, nil, err
	}
	var env []target.EnvVar
	if o.EnvFile != "" || o.EnvJSON != "" || len(o.command) > 0 {
		pod, err := target.RunningPod(ctx, o.client, w)
		if err != nil {
			return nil, nil, err
		}
		if env, err = target.Env(ctx, o.client, pod, t.Container); err != nil {
			return nil, nil, err
		}
		if o.EnvFile != "" {
			warnings, err := target.WriteEnvFileSyntax(o.EnvFile, o.envSyntax, env)
			if err != nil {
				return nil, nil, err
			}
			for _, wmsg := range warnings {
				fmt.Fprintf(o.Streams.ErrOut, "warning: --env-file %s: %s\n", o.EnvFile, wmsg)
			}
		}
		if o.EnvJSON != "" {
			if err := target.WriteEnvJSON(o.EnvJSON, env); err != nil {
				return nil, nil, err
			}
		}
	}
	wire, err := w.InterceptTarget(t)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(o.Streams.ErrOut, "  %s %s/%s port %d (container %s): attaching agents\n", o.doing(), strings.ToLower(w.Kind), w.Name, t.Port, t.Container)
	ic, err := o.ctl.Intercept(ctx, &teleproto.CreateInterceptRequest{
		Name: o.Name, WorkloadKind: w.Kind, WorkloadName: w.Name, Container: t.Container,
		Port: uint32(t.Port), LocalPort: uint32(o.port.Local), HttpMatch: o.terms,
		Mech: o.mech, ResetIdleConnections: o.ResetIdle, Kind: o.kind,
		Tls: cert, LocalTls: o.LocalTLS, Target: wire,
	}, o.mountRequest())
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s/%s: %w", o.verb(), strings.ToLower(w.Kind), w.Name, err)
	}
	o.reportMount(ctx, ic.GetName())
	if o.kind == teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP {
		o.reportWiretap(ctx, ic, w.Kind, w.Name)
		return ic, env, nil
	}
	fmt.Fprintf(o.report(), "Intercept %s: %s to %s/%s port %d now reach localhost:%d%s (mechanism %s, pods %s).\n",
		ic.GetName(), describeMatch(ic.GetHttpMatch()), strings.ToLower(w.Kind), w.Name, t.Port, ic.GetLocalPort(), tlsNote(ic), ic.GetMech().Word(), strings.Join(ic.GetPods(), ", "))
	if note := bypassNote(ic, o.ResetIdle); note != "" {
		fmt.Fprintln(o.Streams.ErrOut, note)
	}
	if len(o.command) == 0 { // the command's server is not up yet
		warnIfNothingListens(ctx, o.Streams.ErrOut, int(ic.GetLocalPort()), "intercepted requests get a 502 until your server does")
	}
	return ic, env, nil
}

// report is where intercept says what it made: standard output, or, when
// a command runs after it, standard error, leaving the command's output
// its own.
func (o *InterceptOptions) report() io.Writer {
	if len(o.command) > 0 {
		return o.Streams.ErrOut
	}
	return o.Streams.Out
}

// matchTerms turns the filter flags into match terms, header terms first as
// given, and validates them together (MaxTerms counts them all).
func (o *InterceptOptions) matchTerms() ([]string, error) {
	terms := make([]string, 0, len(o.HTTPMatch)+4)
	for _, h := range o.HTTPMatch {
		if strings.HasPrefix(h, ":") {
			return nil, fmt.Errorf("--http-match %q: a header name cannot start with ':'; for the path use --http-path, --http-path-prefix or --http-path-regex, for the method --http-method", h)
		}
		terms = append(terms, h)
	}
	for _, f := range []struct {
		v    onceString
		term string
	}{
		{o.HTTPPath, match.Path + "="},
		{o.HTTPPathPrefix, match.Path + "^="},
		{o.HTTPPathRegex, match.Path + "~="},
		{o.HTTPMethod, match.Method + "="},
	} {
		if f.v.set {
			terms = append(terms, f.term+f.v.v)
		}
	}
	if m := o.HTTPMethod.v; o.HTTPMethod.set && m != strings.ToUpper(m) && standardMethods[strings.ToUpper(m)] {
		return nil, fmt.Errorf("--http-method %q: methods are case-sensitive and clients send %s; write --http-method %s", m, strings.ToUpper(m), strings.ToUpper(m))
	}
	if _, err := match.Parse(terms); err != nil {
		return nil, err
	}
	return terms, nil
}

// standardMethods are RFC 9110's methods and PATCH: written in lower case,
// one is a typo, not a custom method.
var standardMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true, http.MethodTrace: true,
}

// describeMatch says in words which requests an intercept's terms select,
// in their canonical order: "requests with method POST and path starting
// with /api/", or "all requests". Terms this version does not know (a newer
// manager's) are shown as they are.
func describeMatch(terms []string) string {
	if len(terms) == 0 {
		return "all requests"
	}
	m, err := match.Parse(terms)
	if err != nil {
		return "requests with " + strings.Join(terms, " and ")
	}
	var parts []string
	for _, t := range m.Terms() {
		parts = append(parts, t.Describe())
	}
	return "requests with " + strings.Join(parts, " and ")
}

// matchColumn shows an intercept's terms in list's MATCH column: in
// canonical order, comma-separated, in the grammar the agent compares.
func matchColumn(terms []string) string {
	if len(terms) == 0 {
		return "(all)"
	}
	m, err := match.Parse(terms)
	if err != nil {
		return strings.Join(terms, ",")
	}
	var parts []string
	for _, t := range m.Terms() {
		parts = append(parts, t.String())
	}
	return strings.Join(parts, ",")
}

// onceString is a string flag that refuses to be given twice, where pflag's
// own would keep the last value silently.
type onceString struct {
	v   string
	set bool
}

func (s *onceString) String() string { return s.v }
func (s *onceString) Type() string   { return "string" }
func (s *onceString) Set(v string) error {
	if s.set {
		return fmt.Errorf("given twice (%q, then %q): each filter takes one value, and all filters must match", s.v, v)
	}
	s.v, s.set = v, true
	return nil
}

// bypassNote tells the user about the connections that were open to the
// port before the agent's redirect: they still reach the app (the redirect
// takes new connections only), and a pooled client may hold one for hours.
func bypassNote(ic *teleproto.Intercept, resetAsked bool) string {
	if nft := teleproto.Mechanism_MECHANISM_NFTABLES; resetAsked && ic.GetMech() != nft {
		return fmt.Sprintf("Warning: --reset-idle-connections needs the %s mechanism; with %s, connections open before the intercept stay on the app until their clients reconnect.", nft.Word(), ic.GetMech().Word())
	}
	open, reset := ic.GetBypassingConnections(), ic.GetResetConnections()
	var lines []string
	if reset > 0 {
		lines = append(lines, fmt.Sprintf("  reset, idle since before the intercept: %s; their clients reconnect through it", plural(reset, "connection")))
	}
	switch left := open - reset; {
	case left > 0 && resetAsked:
		lines = append(lines, fmt.Sprintf("Warning: busy, so not reset: %s to port %d opened before the intercept. The app serves what comes on them until their clients reconnect.",
			plural(left, "connection"), ic.GetPort()))
	case left > 0:
		lines = append(lines, fmt.Sprintf("Warning: opened before the intercept, so not through the agent: %s to port %d. The app serves what comes on them until their clients reconnect (a pooled HTTP or gRPC client may keep one for hours); --reset-idle-connections resets the idle ones.",
			plural(left, "connection"), ic.GetPort()))
	}
	return strings.Join(lines, "\n")
}

func plural(n uint32, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// NewCmdLeave builds kubectl tele leave.
func NewCmdLeave(_ *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "leave NAME",
		Short: "End an intercept: its traffic goes to the workload's pods again",
		Long: `End your intercept NAME: its traffic goes to the workload's pods again.
A wiretap (kubectl tele wiretap) ends the same way: its copies stop.
Another developer's intercept of the same name is theirs and stays; leaving an
intercept that is only someone else's is refused, naming its owner.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeIntercepts,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctl, err := session.DefaultControl()
			if err != nil {
				return err
			}
			defer ctl.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			if err := ctl.Leave(ctx, args[0]); err != nil {
				if errors.Is(err, session.ErrNotRunning) {
					return err
				}
				return fmt.Errorf("leave %s: %w", args[0], err)
			}
			fmt.Fprintf(streams.Out, "Intercept %s ended: its traffic reaches the pods again.\n", args[0])
			return nil
		},
	}
}

// warnIfNothingListens tells the user when the intercept's requests have
// nowhere to go yet, and what follows: for an intercept, a 502 until a
// server listens on the port.
func warnIfNothingListens(ctx context.Context, w io.Writer, port int, then string) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		fmt.Fprintf(w, "warning: nothing listens on localhost:%d yet; %s\n", port, then)
		return
	}
	c.Close()
}

// mechanismWords are the values --mechanism takes, in the enum's order.
func mechanismWords() []string {
	var out []string
	for m := range len(teleproto.Mechanism_name) {
		if w := teleproto.Mechanism(m).Word(); w != "" {
			out = append(out, w)
		}
	}
	return out
}
