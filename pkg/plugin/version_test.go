package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-tele/kubectl-tele/pkg/session"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

// fakeDaemon answers Status on this user's control socket with st. It
// points the session's paths at a temporary folder, so it runs only where
// they do not lead to a real session's (/run/user/UID belongs to a logged-in
// user who is not root).
func fakeDaemon(t *testing.T, st *teleproto.DaemonStatus) {
	t.Helper()
	if fi, err := os.Stat(filepath.Join("/run/user", strconv.Itoa(os.Getuid()))); err == nil && fi.IsDir() && os.Getuid() != 0 {
		t.Skip("the control socket would be in /run/user: this test runs as root or without a user runtime dir")
	}
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	t.Setenv("XDG_CACHE_HOME", dir)
	paths, err := session.DefaultPaths()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", paths.ControlSocket())
	if err != nil {
		t.Fatal(err)
	}
	st.Version = teleproto.CurrentControlVersion
	srv := grpc.NewServer()
	teleproto.RegisterDaemonServer(srv, statusOnly{st: st})
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
}

type statusOnly struct {
	teleproto.UnimplementedDaemonServer
	st *teleproto.DaemonStatus
}

func (s statusOnly) Status(context.Context, *teleproto.StatusRequest) (*teleproto.DaemonStatus, error) {
	return s.st, nil
}

func runRoot(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// A daemon started by another build keeps running its own code: status and
// version say so, and how to restart it.
func TestDaemonSkewWarned(t *testing.T) {
	fakeDaemon(t, &teleproto.DaemonStatus{
		Phase: teleproto.ConnectPhase_CONNECT_PHASE_CONNECTED, Namespace: "demo", Pid: 4242,
		ClientVersion: "v0.0.0-older", ManagerVersion: version.Version,
		ManagerNamespace: "demo", ManagerPod: "tele-manager-abc",
	})
	want := "the daemon runs kubectl-tele v0.0.0-older but this binary is " + version.Version +
		": run kubectl tele quit, then connect again"

	out, _, err := runRoot(t, "status")
	if err != nil || !strings.Contains(out, "Warning:") || !strings.Contains(out, want) {
		t.Errorf("status: err %v, output:\n%s\nwant a warning containing %q", err, out, want)
	}
	out, errOut, err := runRoot(t, "version")
	if err != nil || !strings.Contains(out, "Daemon Version: v0.0.0-older (PID 4242)") || !strings.Contains(errOut, want) {
		t.Errorf("version: err %v, stdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
}

func TestDaemonSameVersionQuiet(t *testing.T) {
	fakeDaemon(t, &teleproto.DaemonStatus{Phase: teleproto.ConnectPhase_CONNECT_PHASE_CONNECTED, Namespace: "demo", Pid: 1, ClientVersion: version.Version})
	out, _, err := runRoot(t, "status")
	if err != nil || strings.Contains(out, "Warning") {
		t.Errorf("status: err %v, output:\n%s\nwant no warning", err, out)
	}
	_, errOut, err := runRoot(t, "version")
	if err != nil || errOut != "" {
		t.Errorf("version: err %v, stderr %q, want none", err, errOut)
	}
}

// status -o json and -o yaml keep the phase names scripts read.
func TestStatusStructuredPhase(t *testing.T) {
	fakeDaemon(t, &teleproto.DaemonStatus{Phase: teleproto.ConnectPhase_CONNECT_PHASE_WAITING_FOR_DEVICE, Namespace: "demo", Pid: 1, ClientVersion: version.Version})
	for format, want := range map[string]string{"json": `"phase": "waiting-for-device"`, "yaml": "phase: waiting-for-device"} {
		out, _, err := runRoot(t, "status", "-o", format)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("status -o %s: %v\n%s", format, err, out)
		}
	}
}

// status -o json is the DaemonStatus by protojson's names, every scalar and
// list even when empty, the phase by its label, and no control version.
func TestStatusDocument(t *testing.T) {
	st := &teleproto.DaemonStatus{Version: teleproto.CurrentControlVersion, Phase: teleproto.ConnectPhase_CONNECT_PHASE_CONNECTED, Pid: 42,
		ManagerNamespace: "demo", Dns: &teleproto.SessionDNS{Checks: []*teleproto.NameCheck{{Form: "svc", Name: "x"}}}}
	doc, err := statusDocument(st, []string{"resolv.conf"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"phase":"connected"`, `"pid":42`, `"managerNamespace":"demo"`, `"context":""`, `"ok":false`, `"routes":[]`, `"repaired":["resolv.conf"]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s: no %s", b, want)
		}
	}
	if strings.Contains(string(b), `"version"`) || strings.Contains(string(b), `"helperRequest"`) {
		t.Errorf("%s: a control version or an empty helper request", b)
	}
}
