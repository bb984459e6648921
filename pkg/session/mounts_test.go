package session

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// TestControlMount: intercept --mount puts the chosen pod's volumes under
// the folder, status shows them, and leave removes the folder; a mount
// that cannot be made ends the intercept the manager made, and says why.
func TestControlMount(t *testing.T) {
	d, ctl, _ := testDaemon(t, nil)
	d.cfg.Client = fake.NewClientset(
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Namespace: "demo", UID: "u1", Labels: map[string]string{"app": "echo"}},
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "echo", VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}, {Name: "cache", MountPath: "/var/cache"}}}},
				Volumes: []corev1.Volume{
					{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}},
					{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				},
			},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "demo"}, Data: map[string]string{"config.yaml": "v: 1"}})
	m := &fakeManager{}
	d.setManager(m, "session-1")
	ctx := ctxT(t)
	req := func() *teleproto.CreateInterceptRequest {
		return &teleproto.CreateInterceptRequest{Name: "echo", WorkloadKind: "Deployment", WorkloadName: "echo", Container: "echo", Port: 8080, LocalPort: 3000,
			Target: &teleproto.InterceptTarget{Pods: &teleproto.InterceptTarget_Selector{Selector: &teleproto.LabelSelector{MatchLabels: map[string]string{"app": "echo"}}}}}
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if _, err := ctl.Intercept(ctx, req(), &teleproto.MountRequest{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/app/config.yaml")); err != nil || string(b) != "v: 1" {
		t.Errorf("config.yaml: %q %v", b, err)
	}
	st, err := ctl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ms := st.GetMounts(); len(ms) != 1 || ms[0].GetIntercept() != "echo" || ms[0].GetDir() != dir || ms[0].GetPod() != "echo-1" ||
		len(ms[0].GetVolumes()) != 2 || ms[0].GetVolumes()[0].GetNotProvided() != "" || !strings.Contains(ms[0].GetVolumes()[1].GetNotProvided(), "only on the node") {
		t.Errorf("status mounts: %v", ms)
	}
	second := req()
	second.Name = "echo-2"
	if _, err := ctl.Intercept(ctx, second, &teleproto.MountRequest{Dir: filepath.Join(dir, "etc")}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "intercept echo mounts") {
		t.Errorf("a second mount inside the first: %v, want FailedPrecondition naming the first", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/app/config.yaml")); err != nil || string(b) != "v: 1" {
		t.Errorf("the first mount after the second was refused: %q %v", b, err)
	}
	if err := ctl.Leave(ctx, "echo"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after leave: %v, want the folder gone", err)
	}
	if entries, _ := os.ReadDir(d.cfg.Paths.MountRecords()); len(entries) != 0 {
		t.Errorf("records left after leave: %d", len(entries))
	}

	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "mine"), nil, 0o600)
	_, err = ctl.Intercept(ctx, req(), &teleproto.MountRequest{Dir: full})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("intercept --mount of a full folder: %v, want FailedPrecondition saying it is not empty", err)
	}
	if len(m.removed) != 3 || d.intercepts["echo"] != nil || d.intercepts["echo-2"] != nil {
		t.Errorf("after the failed mount: removed %v, kept %v; want the intercept removed", m.removed, d.intercepts)
	}
	if _, err := os.Stat(filepath.Join(full, "mine")); err != nil {
		t.Errorf("the user's file: %v", err)
	}
}
