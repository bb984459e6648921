package plugin

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-tele/kubectl-tele/internal/tgz"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/session"
)

// TestGatherLogs: without a session, the archive holds the laptop's logs
// (redacted), status, versions, the resolver's settings and the
// manager's and agents' logs; what the user may not read is a file saying
// so, not a failure.
func TestGatherLogs(t *testing.T) {
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	os.Mkdir(logDir, 0o700)
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
	os.WriteFile(filepath.Join(logDir, "daemon.log"), []byte("level=INFO msg=connected\nlevel=DEBUG msg=proof token="+jwt+"\nAuthorization: Bearer s3cr3t-bearer-value\n"), 0o600)
	os.WriteFile(filepath.Join(logDir, "helper.log"), []byte("level=INFO msg=up key=\"-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEE\\n-----END EC PRIVATE KEY-----\"\n"), 0o600)

	client := fake.NewClientset(
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "kubectl-tele-manager-x1", Labels: map[string]string{managerclient.LabelName: managerclient.Name}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "manager"}}}},
		&corev1.Pod{ObjectMeta: meta("shop", "web-1"), Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web"}},
			EphemeralContainers: []corev1.EphemeralContainer{
				{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "tele-agent-2"}},
				{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger"}},
				{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "tele-agent"}},
			},
		}},
	)
	out := filepath.Join(dir, "logs.tar.gz")
	var stdout, stderr bytes.Buffer
	o := &GatherLogsOptions{
		Flags: genericclioptions.NewConfigFlags(false), Streams: genericiooptions.IOStreams{Out: &stdout, ErrOut: &stderr},
		Output: out, paths: session.Paths{RuntimeDir: dir, LogDir: logDir}, ctl: session.NewControl(filepath.Join(dir, "daemon.sock")),
		client: client, namespace: "shop", now: time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC),
	}
	if err := o.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive: %v, mode %v; want 0600", err, fi.Mode())
	}
	files, err := tgz.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range files {
		names = append(names, n)
	}
	for _, want := range []string{
		"logs/README.txt", "logs/status.json", "logs/versions.txt", "logs/laptop/daemon.log", "logs/laptop/helper.log",
		"logs/cluster/manager/shop_kubectl-tele-manager-x1.log",
		"logs/cluster/agents/shop_web-1_tele-agent.log", "logs/cluster/agents/shop_web-1_tele-agent-2.log",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("archive lacks %s; it has %q", want, names)
		}
	}
	if slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, "debugger") }) {
		t.Errorf("archive has another ephemeral container's log: %q", names)
	}
	if !strings.Contains(files["logs/status.json"], `"phase"`) {
		t.Errorf("status.json: %s", files["logs/status.json"])
	}
	for name, data := range files {
		for _, secret := range []string{jwt, "s3cr3t-bearer-value", "PRIVATE KEY", "MHcCAQEE"} {
			if strings.Contains(data, secret) {
				t.Errorf("%s holds %q:\n%s", name, secret, data)
			}
		}
	}
	if !strings.Contains(files["logs/laptop/daemon.log"], "msg=connected") {
		t.Errorf("daemon.log lost what is not a secret:\n%s", files["logs/laptop/daemon.log"])
	}
	if !strings.Contains(stdout.String(), "Wrote "+out) {
		t.Errorf("stdout %q", stdout.String())
	}
}

// TestGatherLogsRefused: a user who may not list pods gets an archive all
// the same, with a file saying what was refused.
func TestGatherLogsRefused(t *testing.T) {
	dir := t.TempDir()
	client := fake.NewClientset()
	client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", io.ErrUnexpectedEOF)
	})
	out := filepath.Join(dir, "x.tar.gz")
	var stderr bytes.Buffer
	o := &GatherLogsOptions{
		Flags: genericclioptions.NewConfigFlags(false), Streams: genericiooptions.IOStreams{Out: io.Discard, ErrOut: &stderr},
		Output: out, paths: session.Paths{RuntimeDir: dir, LogDir: filepath.Join(dir, "none")}, ctl: session.NewControl(filepath.Join(dir, "daemon.sock")),
		client: client, namespace: "shop", now: time.Now(),
	}
	if err := o.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, err := tgz.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x/cluster/agents.refused.txt", "x/cluster/manager.refused.txt"} {
		if !strings.Contains(files[name], "you need list on pods in namespace shop") {
			t.Errorf("%s: %q", name, files[name])
		}
	}
	if !strings.Contains(files["x/README.txt"], "Not gathered") || !strings.Contains(stderr.String(), "warning: not in the archive: list pods in namespace shop") {
		t.Errorf("README:\n%s\nstderr:\n%s", files["x/README.txt"], stderr.String())
	}
}
