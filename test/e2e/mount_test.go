//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// mountServer is intercept --mount's -- CMD: a server on 127.0.0.1:7095
// that answers each request with the files the pod reads, as they are
// under $TELE_ROOT now (the token by its SHA-256: it is a credential).
const mountServer = `
import hashlib, http.server, os
R = os.environ["TELE_ROOT"]
def rd(p):
    with open(R + p, "rb") as f:
        return f.read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = ("config=%s secret=%s token-sha256=%s" % (rd("/etc/app/config.yaml").decode().strip(), rd("/etc/secret/password").decode().strip(),
             hashlib.sha256(rd("/var/run/secrets/kubernetes.io/serviceaccount/token")).hexdigest())).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
try:
    http.server.HTTPServer(("127.0.0.1", 7095), H).serve_forever()
except KeyboardInterrupt:  # the test's SIGINT: the command's end
    pass
`

// TestInterceptMount: intercept --mount DIR -- CMD, as a user holding only
// the Role of deploy/user-role.yaml, from a laptop that reaches only the
// API server. The workload mounts a ConfigMap at /etc/app, a Secret at
// /etc/secret, the default projected ServiceAccount token, and an emptyDir:
// CMD reads the first three from $TELE_ROOT and an in-cluster request with
// the header gets their contents from the laptop; the emptyDir is named as
// not mounted; a patch of the ConfigMap shows up in DIR; the token is the
// pod's ServiceAccount's (TokenReview); the files are the user's alone;
// after the command DIR is gone and no intercept is left. A user whose Role
// does not let them read Secrets gets the Secret volume named, with the
// verbs missing, and the others mounted.
func TestInterceptMount(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "mount", nil)
	ctx := ctxFor(t, 10*time.Minute)
	if _, err := c.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app-config"},
		Data: map[string]string{"config.yaml": "greeting: v1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-secret"},
		StringData: map[string]string{"password": "pa55-mount"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.deploy(t, ns, "mnt", 1, corev1.Container{
		Image: echoImage,
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1,
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "config", MountPath: "/etc/app"},
			{Name: "secret", MountPath: "/etc/secret"},
			{Name: "cache", MountPath: "/var/cache"},
		},
	}, func(s *corev1.PodSpec) {
		s.Volumes = append(s.Volumes,
			corev1.Volume{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}},
			corev1.Volume{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "app-secret"}}},
			corev1.Volume{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	})
	pod := c.podsOf(t, ns, "mnt")[0]

	// A user with exactly the Roles of deploy/user-role.yaml and
	// deploy/user-role-mount.yaml.
	dev := c.serviceAccount(t, ns, "dev")
	role := c.userRole(t, ns, dev)
	mountRole := c.roleFile(t, ns, "user-role-mount.yaml", dev)
	l := newLaptop(t, 17)
	u := c.saUser(t, ns, "dev", 17)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	dir := filepath.Join(u.home, "mnt")
	os.RemoveAll(dir)

	t.Run("CMD serves the pod's files from DIR, kept current", func(t *testing.T) {
		start := time.Now()
		cmd, exited, out := l.startTele(t, u, "intercept", "deploy/mnt", "--port", "7095:8080", "--http-match", "x-dev=mnt", "--mount", dir,
			"--", "/usr/bin/python3", "-c", mountServer)
		tokenFile := filepath.Join(dir, "var/run/secrets/kubernetes.io/serviceaccount/token")
		var body string
		eventually(t, 2*time.Minute, "CMD serving the mounted files", func() error {
			select {
			case err := <-exited:
				t.Fatalf("intercept --mount -- CMD ended early: %v", err)
			default:
			}
			got, err := l.curl(ctx, "http://127.0.0.1:7095/")
			if err != nil {
				return fmt.Errorf("%v: %s", err, got)
			}
			body = got
			return nil
		})
		t.Logf("intercept --mount -- CMD serving after %s", time.Since(start).Round(time.Millisecond))
		token, err := os.ReadFile(tokenFile)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(token)
		want := "config=greeting: v1 secret=pa55-mount token-sha256=" + hex.EncodeToString(sum[:])
		if !strings.Contains(body, want) {
			t.Errorf("CMD answered %q, want %q", body, want)
		}
		got := c.runPod(t, ns, "get", "-H", "x-dev=mnt@0", "http://mnt:8080/")
		if !strings.Contains(got, want) {
			t.Errorf("an in-cluster request with the header got %q, want the laptop's %q", got, want)
		}
		b, _ := os.ReadFile(out)
		if !strings.Contains(string(b), "volume cache (emptyDir) at /var/cache: not mounted: its files live only on the node") {
			t.Errorf("intercept did not name the emptyDir as not mounted:\n%s", b)
		}
		if st, err := l.tele(ctx, u, "status"); err != nil || !strings.Contains(st, "Mount:") || !strings.Contains(st, dir) {
			t.Errorf("status does not show the mount: %v\n%s", err, st)
		}

		// The files are the user's alone.
		for _, p := range []string{dir, filepath.Join(dir, "etc/app/config.yaml"), filepath.Join(dir, "etc/secret/password"), tokenFile} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			owner := int(fi.Sys().(*syscall.Stat_t).Uid)
			if fi.Mode().Perm()&0o077 != 0 || owner != u.uid {
				t.Errorf("%s: mode %v, owner %d, want the user's (%d) alone", p, fi.Mode().Perm(), owner, u.uid)
			}
		}

		// The token is the pod's ServiceAccount's, bound to the pod.
		tr, err := c.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: string(token)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if wantUser := "system:serviceaccount:" + ns + ":default"; !tr.Status.Authenticated || tr.Status.User.Username != wantUser {
			t.Errorf("TokenReview of the mounted token: authenticated %v as %q (%s), want %s", tr.Status.Authenticated, tr.Status.User.Username, tr.Status.Error, wantUser)
		}
		if pods := tr.Status.User.Extra["authentication.kubernetes.io/pod-name"]; len(pods) != 1 || pods[0] != pod.Name {
			t.Errorf("the token is bound to pod %v, want %s", pods, pod.Name)
		}

		// An edit of the ConfigMap shows up in DIR: the kubelet's own
		// sync (up to a minute) plus 10 s at most.
		patched := time.Now()
		if _, err := c.client.CoreV1().ConfigMaps(ns).Patch(ctx, "app-config", types.MergePatchType, []byte(`{"data":{"config.yaml":"greeting: v2"}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 70*time.Second, "the ConfigMap's edit in DIR", func() error {
			b, err := os.ReadFile(filepath.Join(dir, "etc/app/config.yaml"))
			if err != nil || string(b) != "greeting: v2" {
				return fmt.Errorf("%q, %v", b, err)
			}
			return nil
		})
		t.Logf("the ConfigMap's edit was in DIR %s after the patch", time.Since(patched).Round(time.Millisecond))
		if got, err := l.curl(ctx, "http://127.0.0.1:7095/"); err != nil || !strings.Contains(got, "config=greeting: v2 ") {
			t.Errorf("CMD after the edit: %v %q", err, got)
		}

		pid := teleProcess(t, cmd.Process.Pid)
		if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case <-exited:
		case <-time.After(time.Minute):
			t.Fatal("kubectl tele did not end a minute after SIGINT")
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			entries, _ := os.ReadDir(dir)
			t.Errorf("DIR is still there after the command: %v, %d entries", err, len(entries))
		}
		noIntercept(t, ctx, l, u, "x-dev=mnt")
	})

	// How long --mount takes is make bench's to measure (its "intercept
	// --mount" rows); here, that leave empties DIR.
	t.Run("leave removes DIR", func(t *testing.T) {
		if out, err := l.tele(ctx, u, "intercept", "deploy/mnt", "--name", "mounted", "--port", "7096:8080", "--http-match", "x-dev=mounted", "--mount", dir); err != nil {
			t.Fatalf("intercept --mount: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "etc/app/config.yaml")); err != nil {
			t.Errorf("--mount: %v", err)
		}
		if out, err := l.tele(ctx, u, "leave", "mounted"); err != nil {
			t.Fatalf("leave: %v\n%s", err, out)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("DIR is still there after leave: %v", err)
		}
	})
	if out, err := l.tele(ctx, u, "quit"); err != nil {
		t.Fatalf("quit: %v\n%s", err, out)
	}

	t.Run("a user who may not read Secrets gets the Secret volume named", func(t *testing.T) {
		dev2 := c.serviceAccount(t, ns, "dev2")
		c.narrowRole(t, ns, role, "no-secret-reads", func(r rbacv1.PolicyRule) []string {
			if len(r.Resources) == 1 && r.Resources[0] == "secrets" {
				return []string{"create"}
			}
			return r.Verbs
		}, dev2)
		c.narrowRole(t, ns, mountRole, "mount-no-secrets", func(r rbacv1.PolicyRule) []string {
			if len(r.Resources) == 1 && r.Resources[0] == "secrets" {
				return nil
			}
			return r.Verbs
		}, dev2)
		u2 := c.saUser(t, ns, "dev2", 18)
		t.Cleanup(func() { l.tele(context.Background(), u2, "quit") })
		if out, err := l.tele(ctx, u2, "connect", "-n", ns); err != nil {
			t.Fatalf("connect: %v\n%s", err, out)
		}
		dir2 := filepath.Join(u2.home, "mnt")
		os.RemoveAll(dir2)
		out, err := l.tele(ctx, u2, "intercept", "deploy/mnt", "--port", "7097:8080", "--http-match", "x-dev=narrow", "--mount", dir2)
		if err != nil {
			t.Fatalf("intercept --mount without Secret reads: %v\n%s", err, out)
		}
		t.Logf("intercept --mount without Secret reads said:\n%s", out)
		if !strings.Contains(out, `volume secret (secret) at /etc/secret: not mounted: needs list and watch on secrets in namespace `+ns+`, to read "app-secret"`) {
			t.Errorf("the Secret volume is not named with the verbs it needs:\n%s", out)
		}
		if b, err := os.ReadFile(filepath.Join(dir2, "etc/app/config.yaml")); err != nil || string(b) != "greeting: v2" {
			t.Errorf("the ConfigMap volume: %q, %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(dir2, "etc/secret")); !os.IsNotExist(err) {
			t.Errorf("the Secret volume's folder: %v, want none", err)
		}
		if out, err := l.tele(ctx, u2, "quit"); err != nil {
			t.Fatalf("quit: %v\n%s", err, out)
		}
		if _, err := os.Stat(dir2); !os.IsNotExist(err) {
			t.Errorf("DIR is still there after quit: %v", err)
		}
	})
}
