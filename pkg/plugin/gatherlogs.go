package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/kubectl-tele/kubectl-tele/internal/tgz"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-tele/kubectl-tele/internal/redact"
	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/session"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// maxLogBytes bounds each log gathered: the end of a log is what a bug
// report needs.
const maxLogBytes = 32 << 20

// agentContainerPrefix names the agents' ephemeral containers: tele-agent,
// then tele-agent-2... for a pod whose earlier agent ended.
const agentContainerPrefix = "tele-agent"

// GatherLogsOptions holds the flags of kubectl tele gather-logs.
type GatherLogsOptions struct {
	Flags   *genericclioptions.ConfigFlags
	Streams genericiooptions.IOStreams
	// Output is the archive to write; "-" for standard output.
	Output string

	paths session.Paths
	ctl   *session.Control
	// client reads the cluster's logs with the user's own credentials;
	// nil when the kubeconfig gives none (the archive says why).
	client    kubernetes.Interface
	clientErr error
	namespace string // the kubeconfig's, for when no session says one
	now       time.Time
}

// NewCmdGatherLogs builds kubectl tele gather-logs.
func NewCmdGatherLogs(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &GatherLogsOptions{Flags: flags, Streams: streams}
	cmd := &cobra.Command{
		Use:   "gather-logs [-o FILE]",
		Short: "Write one archive with what a bug report needs: logs, status, versions and DNS settings, credentials redacted",
		Long: `Write one .tar.gz archive with what a bug report needs:

  laptop/         the daemon's and the privileged helper's logs
  cluster/        the traffic manager's log, and the logs of the namespace's
                  traffic agents (ephemeral containers tele-agent*), read
                  with your own credentials, as kubectl logs does
  status.json     kubectl tele status -o json
  intercepts.json the session's intercepts, everyone's
  versions.txt    the client's, daemon's, manager's and Kubernetes' versions
  resolver/       this machine's DNS settings: /etc/resolv.conf, resolvectl
                  status, /etc/resolver/* on macOS, the helper's saved state

What cannot be read (not connected, no permission to read a pod's logs) is
a file named NAME.refused.txt or NAME.error.txt saying what was refused and
why, not a failure. Bearer tokens, JWTs, private keys (PEM and base64),
Authorization headers, and fields named like token, password or secret are
redacted in every file; read the archive before you share it all the same.
The archive is readable only by you.`,
		Example: `  kubectl tele gather-logs
  kubectl tele gather-logs -o /tmp/tele-logs.tar.gz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "the archive to write, - for standard output (default: kubectl-tele-logs-TIMESTAMP.tar.gz in the current folder)")
	return cmd
}

// Complete finds the session's paths and a client of the cluster.
func (o *GatherLogsOptions) Complete() error {
	o.now = time.Now().UTC()
	if o.Output == "" {
		o.Output = "kubectl-tele-logs-" + o.now.Format("20060102T150405Z") + ".tar.gz"
	}
	var err error
	if o.paths, err = session.DefaultPaths(); err != nil {
		return err
	}
	o.ctl = session.NewControl(o.paths.ControlSocket())
	o.namespace, _, _ = o.Flags.ToRawKubeConfigLoader().Namespace()
	cfg, err := o.Flags.ToRESTConfig()
	if err == nil {
		o.client, err = kubernetes.NewForConfig(cfg)
	}
	o.clientErr = err
	return nil
}

// archive is the files gathered so far, each redacted as it is added.
type archive struct {
	dir   string // the top folder every file is under
	files []tgz.File
	// notes are what could not be gathered, also told on standard error.
	notes []string
}

// add adds a file, redacted.
func (a *archive) add(name string, data []byte) {
	a.files = append(a.files, tgz.File{Name: name, Data: redact.Bytes(data)})
}

// fail records that name could not be gathered, as a file beside where it
// would be: NAME.refused.txt for what Kubernetes RBAC or file permissions
// refused, NAME.error.txt for any other reason.
func (a *archive) fail(name, what string, err error) {
	kind := "error"
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || errors.Is(err, fs.ErrPermission) {
		kind = "refused"
	}
	a.add(name+"."+kind+".txt", fmt.Appendf(nil, "%s: %s: %v\n", kind, what, err))
	a.notes = append(a.notes, fmt.Sprintf("%s: %s", what, err))
}

// Run gathers everything into the archive and writes it.
func (o *GatherLogsOptions) Run(ctx context.Context) error {
	defer o.ctl.Close()
	a := &archive{dir: strings.TrimSuffix(strings.TrimSuffix(filepath.Base(o.Output), ".gz"), ".tar")}
	if o.Output == "-" {
		a.dir = "kubectl-tele-logs-" + o.now.Format("20060102T150405Z")
	}

	st := o.gatherSession(ctx, a)
	o.gatherVersions(ctx, a)
	o.gatherLaptopLogs(a)
	gatherResolver(ctx, a)
	o.gatherCluster(ctx, a, st)
	a.add("README.txt", []byte(o.readme(a)))

	if err := o.write(a); err != nil {
		return err
	}
	for _, n := range a.notes {
		fmt.Fprintf(o.Streams.ErrOut, "warning: not in the archive: %s\n", n)
	}
	if o.Output != "-" {
		fmt.Fprintf(o.Streams.Out, "Wrote %s (%d files). Tokens and keys are redacted; read it before you share it.\n", o.Output, len(a.files))
	}
	return nil
}

// gatherSession adds status -o json and the intercepts, and returns the
// status (nil without a session).
func (o *GatherLogsOptions) gatherSession(ctx context.Context, a *archive) *teleproto.DaemonStatus {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := o.ctl.CheckedStatus(ctx)
	if errors.Is(err, session.ErrNotRunning) {
		// As status prints it, without the repair status would make.
		st = &teleproto.DaemonStatus{Phase: teleproto.ConnectPhase_CONNECT_PHASE_DISCONNECTED, LogFile: o.paths.DaemonLog(), HelperLogFile: o.paths.HelperLog()}
	} else if err != nil {
		a.fail("status.json", "the session's status", err)
		return nil
	}
	var b bytes.Buffer
	doc, err := statusDocument(st, nil)
	if err != nil {
		a.fail("status.json", "the session's status", err)
		return nil
	}
	_, _ = printStructured(&b, "json", doc)
	a.add("status.json", b.Bytes())
	if st.Phase != teleproto.ConnectPhase_CONNECT_PHASE_CONNECTED {
		return st
	}
	ics, err := o.ctl.List(ctx)
	if err != nil {
		a.fail("intercepts.json", "the session's intercepts", err)
		return st
	}
	b.Reset()
	_, _ = printStructured(&b, "json", ics)
	a.add("intercepts.json", b.Bytes())
	return st
}

// gatherVersions adds version's output and the API server's version.
func (o *GatherLogsOptions) gatherVersions(ctx context.Context, a *archive) {
	var b bytes.Buffer
	_ = (&VersionOptions{Streams: genericiooptions.IOStreams{Out: &b, ErrOut: &b}}).Run(ctx)
	if o.client != nil {
		if v, err := o.client.Discovery().ServerVersion(); err != nil {
			fmt.Fprintf(&b, "Kubernetes Version: unknown: %v\n", err)
		} else {
			fmt.Fprintf(&b, "Kubernetes Version: %s (%s)\n", v.GitVersion, v.Platform)
		}
	}
	fmt.Fprintf(&b, "OS: %s/%s\n", runtime.GOOS, runtime.GOARCH)
	a.add("versions.txt", b.Bytes())
}

// gatherLaptopLogs adds every file of the session's log folder: daemon.log,
// helper.log, and what else the daemon and helper keep there.
func (o *GatherLogsOptions) gatherLaptopLogs(a *archive) {
	entries, err := os.ReadDir(o.paths.LogDir)
	if err != nil {
		a.fail("laptop/logs", "the log folder "+o.paths.LogDir, err)
		return
	}
	found := false
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		found = true
		p := filepath.Join(o.paths.LogDir, e.Name())
		b, err := readTail(p, maxLogBytes)
		if err != nil {
			a.fail("laptop/"+e.Name(), p, err)
			continue
		}
		a.add("laptop/"+e.Name(), b)
	}
	if !found {
		a.fail("laptop/logs", "the log folder "+o.paths.LogDir, errors.New("no logs: no session has run as this user on this machine"))
	}
}

// readTail reads the last max bytes of the file at p.
func readTail(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var head []byte
	if fi.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return nil, err
		}
		head = fmt.Appendf(nil, "[kubectl tele gather-logs: the first %d bytes of %d are left out]\n", fi.Size()-max, fi.Size())
	}
	b, err := io.ReadAll(f)
	return append(head, b...), err
}

// gatherResolver adds this machine's DNS settings: what the session
// changes, and what a broken name resolution is diagnosed from.
func gatherResolver(ctx context.Context, a *archive) {
	addFile := func(name, p string) {
		b, err := os.ReadFile(p)
		if err != nil {
			a.fail(name, p, err)
			return
		}
		a.add(name, b)
	}
	addFile("resolver/resolv.conf", "/etc/resolv.conf")
	if runtime.GOOS == "darwin" {
		files, _ := filepath.Glob("/etc/resolver/*")
		for _, f := range files {
			addFile("resolver/etc-resolver/"+filepath.Base(f), f)
		}
		addCommand(ctx, a, "resolver/scutil-dns.txt", "scutil", "--dns")
	}
	if _, err := exec.LookPath("resolvectl"); err == nil {
		addCommand(ctx, a, "resolver/resolvectl-status.txt", "resolvectl", "status")
	}
	// The helper's saved state (resolv.conf's backup, resolved's link),
	// which quit restores from.
	if dir, err := helperStateDir(); err == nil {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.fail("resolver/helper-state", "the helper's state "+dir, err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				addFile("resolver/helper-state/"+e.Name(), filepath.Join(dir, e.Name()))
			}
		}
	}
}

// addCommand adds a command's output.
func addCommand(ctx context.Context, a *archive, name string, argv ...string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		a.fail(name, strings.Join(argv, " "), fmt.Errorf("%w: %s", err, out))
		return
	}
	a.add(name, out)
}

// gatherCluster adds the manager's log and the namespace's agents' logs,
// read with the user's own credentials.
func (o *GatherLogsOptions) gatherCluster(ctx context.Context, a *archive, st *teleproto.DaemonStatus) {
	if o.client == nil {
		a.fail("cluster/logs", "the cluster's logs", o.clientErr)
		return
	}
	ns, managerNS, managerPod := o.namespace, o.namespace, ""
	if st != nil && st.Namespace != "" {
		ns, managerNS, managerPod = st.Namespace, st.ManagerNamespace, st.ManagerPod
	}
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	if managerNS == "" {
		managerNS = ns
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	// The manager: the session's pod, or any of the namespace's.
	var managers []string
	if managerPod != "" {
		managers = []string{managerPod}
	} else {
		pods, err := o.client.CoreV1().Pods(managerNS).List(ctx, metav1.ListOptions{LabelSelector: managerclient.LabelName + "=" + managerclient.Name})
		if err != nil {
			if apierrors.IsForbidden(err) {
				err = fmt.Errorf("%w (you need list on pods in namespace %s)", err, managerNS)
			}
			a.fail("cluster/manager", fmt.Sprintf("list the manager's pods in namespace %s", managerNS), err)
		} else if len(pods.Items) == 0 {
			a.fail("cluster/manager", fmt.Sprintf("the manager's pods in namespace %s", managerNS), errors.New("none: kubectl tele connect starts one"))
		}
		for _, p := range pods.Items {
			managers = append(managers, p.Name)
		}
	}
	for _, pod := range managers {
		o.addPodLog(ctx, a, path.Join("cluster", "manager", managerNS+"_"+pod+".log"), managerNS, pod, "")
	}

	// The agents: every pod's tele-agent* ephemeral containers.
	pods, err := o.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		if apierrors.IsForbidden(err) {
			err = fmt.Errorf("%w (you need list on pods in namespace %s)", err, ns)
		}
		a.fail("cluster/agents", fmt.Sprintf("list pods in namespace %s (for their agents)", ns), err)
		return
	}
	for _, pod := range pods.Items {
		for _, c := range agentContainers(&pod) {
			o.addPodLog(ctx, a, path.Join("cluster", "agents", ns+"_"+pod.Name+"_"+c+".log"), ns, pod.Name, c)
		}
	}
}

// agentContainers are pod's agents' ephemeral containers, in order.
func agentContainers(pod *corev1.Pod) []string {
	var names []string
	for _, c := range pod.Spec.EphemeralContainers {
		if strings.HasPrefix(c.Name, agentContainerPrefix) {
			names = append(names, c.Name)
		}
	}
	slices.Sort(names)
	return names
}

// addPodLog adds the log of container (or the pod's only one) of ns/pod.
func (o *GatherLogsOptions) addPodLog(ctx context.Context, a *archive, name, ns, pod, container string) {
	limit := int64(maxLogBytes)
	b, err := o.client.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, LimitBytes: &limit, Timestamps: true}).DoRaw(ctx)
	if err != nil {
		what := fmt.Sprintf("the logs of pod %s/%s", ns, pod)
		if container != "" {
			what += " container " + container
		}
		if apierrors.IsForbidden(err) {
			err = fmt.Errorf("%w (you need get on pods/log in namespace %s)", err, ns)
		}
		a.fail(strings.TrimSuffix(name, ".log"), what, err)
		return
	}
	a.add(name, b)
}

// readme says what the archive holds.
func (o *GatherLogsOptions) readme(a *archive) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kubectl tele gather-logs, %s\n\n", o.now.Format(time.RFC3339))
	b.WriteString("Credentials (bearer tokens, JWTs, private keys, Authorization headers, fields named\n" +
		"like token, password or secret) are replaced by " + redact.Marker + " in every file.\n\nFiles:\n")
	for _, f := range a.files {
		fmt.Fprintf(&b, "  %s (%d bytes)\n", f.Name, len(f.Data))
	}
	if len(a.notes) > 0 {
		b.WriteString("\nNot gathered (see the .refused.txt and .error.txt files):\n")
		for _, n := range a.notes {
			fmt.Fprintf(&b, "  %s\n", n)
		}
	}
	return b.String()
}

// write writes the archive to o.Output, readable only by the user, whole
// or not at all.
func (o *GatherLogsOptions) write(a *archive) error {
	if o.Output == "-" {
		return tgz.Write(o.Streams.Out, a.dir, a.files, o.now)
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.Output), ".kubectl-tele-logs-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", o.Output, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", o.Output, err)
	}
	if err := tgz.Write(tmp, a.dir, a.files, o.now); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", o.Output, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", o.Output, err)
	}
	if err := os.Rename(tmp.Name(), o.Output); err != nil {
		return fmt.Errorf("write %s: %w", o.Output, err)
	}
	return nil
}
