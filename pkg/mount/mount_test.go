package mount

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mountedPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "ns", UID: "uid-1", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web",
			Containers: []corev1.Container{{Name: "web", VolumeMounts: []corev1.VolumeMount{
				{Name: "config", MountPath: "/etc/app"},
				{Name: "secret", MountPath: "/etc/secret"},
				{Name: "token", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"},
				{Name: "config", MountPath: "/etc/one.yaml", SubPath: "config.yaml"},
				{Name: "cache", MountPath: "/var/cache"},
			}}},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, DefaultMode: mode(0o644)}}},
				{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s", DefaultMode: mode(0o644)}}},
				{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{DefaultMode: mode(0o644), Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: new(int64(3600)), Path: "token"}},
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
				}}}},
				{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// fakeCluster is a fake clientset with the pod's ConfigMap and Secret,
// whose TokenRequests answer T1, T2, ... valid for an hour.
func fakeCluster(t *testing.T) (*fake.Clientset, *int) {
	client := fake.NewClientset(mountedPod(),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}, Data: map[string]string{"config.yaml": "v: 1"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"}, Data: map[string][]byte{"password": []byte("pw")}})
	tokens := 0
	client.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		req := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest)
		if ref := req.Spec.BoundObjectRef; ref == nil || ref.Kind != "Pod" || ref.UID != types.UID("uid-"+strings.TrimPrefix(ref.Name, "web-")) {
			t.Errorf("token request bound to %+v, want the pod", ref)
		}
		tokens++
		return true, &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{
			Token: fmt.Sprintf("T%d", tokens), ExpirationTimestamp: metav1.NewTime(time.Now().Add(time.Hour))}}, nil
	})
	return client, &tokens
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMount: the volumes appear at their paths, an edit of the ConfigMap
// is written, the token is requested again at 80% of its life, and Close
// removes the folder it made.
func TestMount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, tokens := fakeCluster(t)
		dir := filepath.Join(t.TempDir(), "mnt")
		pick := func(ctx context.Context) (*corev1.Pod, error) {
			for _, name := range []string{"web-1", "web-2"} {
				if p, err := client.CoreV1().Pods("ns").Get(ctx, name, metav1.GetOptions{}); err == nil {
					return p, nil
				}
			}
			return nil, fmt.Errorf("no pod")
		}
		m, err := Start(t.Context(), Config{Client: client, Namespace: "ns", Dir: dir, Intercept: "web", PickPod: pick})
		if err != nil {
			t.Fatal(err)
		}
		// The next pod's spec no longer mounts the Secret.
		next := mountedPod()
		next.Name, next.UID = "web-2", "uid-2"
		next.Spec.Containers[0].VolumeMounts = slices.DeleteFunc(next.Spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "secret" })
		if _, err := client.CoreV1().Pods("ns").Create(t.Context(), next, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for p, want := range map[string]string{
			"etc/app/config.yaml": "v: 1", "etc/secret/password": "pw", "etc/one.yaml": "v: 1",
			"var/run/secrets/kubernetes.io/serviceaccount/token": "T1", "var/run/secrets/kubernetes.io/serviceaccount/namespace": "ns",
		} {
			if got := readFile(t, filepath.Join(dir, p)); got != want {
				t.Errorf("%s: %q, want %q", p, got, want)
			}
		}
		st := m.Status()
		var why []string
		for _, v := range st.Volumes {
			if v.Why != "" {
				why = append(why, v.Name)
			}
		}
		if st.Pod != "web-1" || len(st.Volumes) != 5 || len(why) != 1 || why[0] != "cache" {
			t.Errorf("status %+v: want 5 volumes, only cache not provided", st)
		}

		if _, err := client.CoreV1().ConfigMaps("ns").Update(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"},
			Data: map[string]string{"config.yaml": "v: 2"}}, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := readFile(t, filepath.Join(dir, "etc/app/config.yaml")); got != "v: 2" {
			t.Errorf("after the edit: %q, want v: 2", got)
		}
		if got := readFile(t, filepath.Join(dir, "etc/one.yaml")); got != "v: 2" {
			t.Errorf("the subPath mount after the edit: %q, want v: 2", got)
		}

		time.Sleep(47 * time.Minute)
		synctest.Wait()
		if *tokens != 1 {
			t.Errorf("%d token requests at 47 minutes of 60, want 1", *tokens)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := readFile(t, filepath.Join(dir, "var/run/secrets/kubernetes.io/serviceaccount/token")); got != "T2" || *tokens != 2 {
			t.Errorf("at 49 minutes: token %q after %d requests, want T2, renewed at 48", got, *tokens)
		}

		// The pod goes (a rollout): the next one's volumes, and a token
		// bound to it.
		if err := client.CoreV1().Pods("ns").Delete(t.Context(), "web-1", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if st := m.Status(); st.Pod != "web-2" {
			t.Errorf("after the pod was deleted: pod %q, want web-2", st.Pod)
		}
		if got := readFile(t, filepath.Join(dir, "var/run/secrets/kubernetes.io/serviceaccount/token")); got != "T3" {
			t.Errorf("the next pod's token: %q, want T3", got)
		}
		for p, want := range map[string]string{"etc/app/config.yaml": "v: 2", "etc/one.yaml": "v: 2"} {
			if got := readFile(t, filepath.Join(dir, p)); got != want {
				t.Errorf("the next pod's %s: %q, want %q", p, got, want)
			}
		}
		if _, err := os.Lstat(filepath.Join(dir, "etc/secret")); !os.IsNotExist(err) {
			t.Errorf("the Secret the next pod does not mount: %v, want it gone", err)
		}

		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("after Close: %v, want the folder removed", err)
		}
	})
}

// TestMountForbidden: a Secret the user may not list is named with the
// verbs it needs, and the other volumes are mounted; a token the user may
// not request likewise.
func TestMountForbidden(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, _ := fakeCluster(t)
		forbid := func(verb string) error {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "", fmt.Errorf("cannot %s", verb))
		}
		client.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, forbid("list") })
		client.PrependWatchReactor("secrets", func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, forbid("watch") })
		client.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "serviceaccounts/token"}, "web", fmt.Errorf("no"))
		})
		dir := filepath.Join(t.TempDir(), "mnt")
		m, err := Start(t.Context(), Config{Client: client, Namespace: "ns", Dir: dir, Intercept: "web",
			PickPod: func(context.Context) (*corev1.Pod, error) { return mountedPod(), nil }})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		why := map[string]string{}
		for _, v := range m.Status().Volumes {
			why[v.Name] = v.Why
		}
		if !strings.Contains(why["secret"], `needs list and watch on secrets in namespace ns, to read "s"`) {
			t.Errorf("secret: %q", why["secret"])
		}
		if !strings.Contains(why["token"], `needs create on serviceaccounts/token in namespace ns, for the token of ServiceAccount "web"`) {
			t.Errorf("token: %q", why["token"])
		}
		if why["config"] != "" {
			t.Errorf("config: %q, want it mounted", why["config"])
		}
		if got := readFile(t, filepath.Join(dir, "etc/app/config.yaml")); got != "v: 1" {
			t.Errorf("config.yaml: %q", got)
		}
		if _, err := os.Stat(filepath.Join(dir, "etc/secret")); !os.IsNotExist(err) {
			t.Errorf("etc/secret: %v, want none", err)
		}
	})
}
