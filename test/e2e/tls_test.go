//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
)

// TestInterceptTLS: an app that serves HTTPS itself (h2 and http/1.1), with
// a certificate for its Service's names signed by a CA the test makes. Two
// developers intercept it with --tls-secret: alice's matching requests
// reach her local server in cleartext, bob's his local HTTPS server
// (--local-tls, a self-signed certificate), and every other request the
// app over TLS again. A client pod verifies the certificate against the CA
// by the Service's name on every request, over HTTP/1.1 and HTTP/2. Before
// that, filters without --tls-secret and bad Secrets are refused with a
// message saying what to do, leaving nothing behind.
func TestInterceptTLS(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "tls", nil)
	ctx := ctxFor(t, 15*time.Minute)
	const app = "echo-tls"
	ca := testcert.NewCA(t, "kubectl-tele e2e CA")
	pair := ca.Leaf(t, app, app+"."+ns, app+"."+ns+".svc", app+"."+ns+".svc.cluster.local")
	other := ca.Leaf(t, "other."+ns+".svc")
	for _, s := range []*corev1.Secret{
		tlsSecret(app, corev1.SecretTypeTLS, pair.CertPEM, pair.KeyPEM),
		tlsSecret("opaque-tls", corev1.SecretTypeOpaque, pair.CertPEM, pair.KeyPEM),
		tlsSecret("mismatched-tls", corev1.SecretTypeTLS, pair.CertPEM, other.KeyPEM),
		{ObjectMeta: metav1.ObjectMeta{Name: "test-ca"}, Data: map[string][]byte{"ca.crt": ca.PEM}},
	} {
		if _, err := c.client.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create secret %s: %v", s.Name, err)
		}
	}
	c.deploy(t, ns, app, 2, corev1.Container{
		Image:        echoImage,
		Command:      []string{"/echo", "serve", "-http", ":8443", "-udp", "", "-tls-cert", "/tls/tls.crt", "-tls-key", "/tls/tls.key"},
		Ports:        []corev1.ContainerPort{{Name: "https", ContainerPort: 8443, Protocol: corev1.ProtocolTCP}},
		VolumeMounts: []corev1.VolumeMount{{Name: "tls", MountPath: "/tls", ReadOnly: true}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8443), Scheme: corev1.URISchemeHTTPS}},
			PeriodSeconds: 1,
		},
	}, withSecretVolume("tls", app))

	d := connectDevelopers(ctx, t, ns, 43, 44)
	la, alice, lb, bob := d[0].l, d[0].u, d[1].l, d[1].u
	la.localServer(t, alice, 7043, "LAPTOP-ALICE")
	lb.localTLSServer(t, bob, 7044, "LAPTOP-BOB")

	// refused runs an intercept that must fail saying says, and checks that
	// it left nothing behind: no intercept listed, no agent in the pods.
	refused := func(t *testing.T, says string, args ...string) {
		t.Helper()
		out, err := la.tele(ctx, alice, append([]string{"intercept", "deploy/" + app, "--name", "refused", "--port", "7043:https"}, args...)...)
		if err == nil || !strings.Contains(out, says) {
			t.Errorf("intercept %q: %v, want an error saying %q:\n%s", args, err, says, out)
		}
		t.Logf("intercept %q: %s", args, strings.TrimSpace(out))
		if out, _ := la.tele(ctx, alice, "list", "--intercepts"); strings.Contains(out, "refused") {
			t.Errorf("a refused intercept is listed:\n%s", out)
		}
		for _, p := range c.podsOf(t, ns, app) {
			if n := len(p.Spec.EphemeralContainers); n != 0 {
				t.Errorf("pod %s has %d ephemeral containers after a refused intercept", p.Name, n)
			}
		}
	}
	t.Run("filters on a TLS port need --tls-secret", func(t *testing.T) {
		refused(t, "serves TLS", "--http-match", "x-dev=alice")
		refused(t, "--tls-secret NAME", "--http-path-prefix", "/api/")
	})
	t.Run("bad Secrets are refused", func(t *testing.T) {
		refused(t, "no such Secret in namespace "+ns, "--http-match", "x-dev=alice", "--tls-secret", "missing-tls")
		refused(t, `is of type "Opaque", not "kubernetes.io/tls"`, "--http-match", "x-dev=alice", "--tls-secret", "opaque-tls")
		refused(t, "not a certificate and its own key", "--http-match", "x-dev=alice", "--tls-secret", "mismatched-tls")
	})

	t.Run("matching requests reach the laptops, others the app, all verified", func(t *testing.T) {
		for _, ic := range []struct {
			l    *laptop
			u    *teleUser
			args []string
			said string
		}{
			{la, alice, []string{"--port", "7043:https", "--http-match", "x-dev=alice"}, "in cleartext (the agents terminate the clients' TLS with Secret " + app + ")"},
			{lb, bob, []string{"--port", "7044:https", "--http-match", "x-dev=bob", "--local-tls"}, "over TLS (the agents terminate the clients' TLS with Secret " + app + ")"},
		} {
			out, err := ic.l.tele(ctx, ic.u, append([]string{"intercept", "deploy/" + app, "--tls-secret", app}, ic.args...)...)
			if err != nil || !strings.Contains(out, ic.said) {
				t.Fatalf("intercept %q: %v, want it to say %q:\n%s", ic.args, err, ic.said, out)
			}
			t.Logf("intercept: %s", strings.TrimSpace(out))
		}
		// list and status show the Secret's name, never its bytes (an
		// Intercept has no field for them; list has no -o yet).
		out, _ := la.tele(ctx, alice, "list", "--intercepts")
		t.Logf("list:\n%s", out)
		if !strings.Contains(out, "x-dev=alice tls-secret="+app+" ") || !strings.Contains(out, "x-dev=bob tls-secret="+app+",local-tls ") {
			t.Errorf("list does not show both intercepts' tls-secret:\n%s", out)
		}
		st, _ := la.tele(ctx, alice, "status")
		for _, o := range []string{out, st} {
			if strings.Contains(o, "PRIVATE") || strings.Contains(o, "BEGIN") {
				t.Errorf("key material shown:\n%s", o)
			}
		}

		// 30 requests over one connection: 10 with x-dev=alice, 10 with
		// x-dev=bob, 10 without; by the Service's full name, which the
		// certificate names.
		url := fmt.Sprintf("https://%s.%s.svc:8443/", app, ns)
		var args, want []string
		for i := range 30 {
			args = append(args, fmt.Sprintf("%sreq/%d", url, i))
			switch i % 3 {
			case 0:
				args = append([]string{"-H", fmt.Sprintf("x-dev=alice@%d", i)}, args...)
				want = append(want, "LAPTOP-ALICE")
			case 1:
				args = append([]string{"-H", fmt.Sprintf("x-dev=bob@%d", i)}, args...)
				want = append(want, "LAPTOP-BOB")
			default:
				want = append(want, app+"-")
			}
		}
		for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
			cmd := []string{"/echo", "get", "-ca", "/ca/ca.crt"}
			if proto == "HTTP/2.0" {
				cmd = append(cmd, "-h2")
			}
			start := time.Now()
			log := c.podLog(t, ns, c.startWithSecret(t, ns, "test-ca", "/ca", append(cmd, args...)...), true)
			t.Logf("%s: 30 requests in one client pod, %s (pod start included)", proto, time.Since(start).Round(time.Millisecond))
			checkServed(t, "TLS "+proto, whoAnswered(log), want)
			if n := strings.Count(log, "client="+proto); n != len(want) {
				t.Errorf("%s: %d answers over %s, want %d:\n%s", proto, n, proto, len(want), log)
			}
		}
	})
}

func tlsSecret(name string, typ corev1.SecretType, crt, key []byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Type: typ,
		Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}
}

// withSecretVolume adds Secret secret as volume name to a pod spec.
func withSecretVolume(name, secret string) func(*corev1.PodSpec) {
	return func(s *corev1.PodSpec) {
		s.Volumes = append(s.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}})
	}
}

// startWithSecret starts a pod that runs command in the echo image with
// Secret secret mounted at dir, and returns its name without waiting.
func (c *cluster) startWithSecret(t *testing.T, ns, secret, dir string, command ...string) string {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "client-", Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "client", Image: echoImage, ImagePullPolicy: corev1.PullIfNotPresent, Command: command,
				VolumeMounts: []corev1.VolumeMount{{Name: "secret", MountPath: dir, ReadOnly: true}},
			}},
		},
	}
	withSecretVolume("secret", secret)(&pod.Spec)
	created, err := c.client.CoreV1().Pods(ns).Create(ctxFor(t, time.Minute), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create client pod: %v", err)
	}
	return created.Name
}

// localTLSServer runs the echo app on the laptop's localhost:port as u,
// serving HTTPS with a self-signed certificate of its own, as a developer's
// server behind --local-tls may.
func (l *laptop) localTLSServer(t *testing.T, u *teleUser, port int, name string) {
	t.Helper()
	pair := testcert.NewCA(t, "laptop's own").Leaf(t, "localhost")
	dir, err := os.MkdirTemp("", "tele-e2e-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	// A test key, readable by the test's user.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string][]byte{crt: pair.CertPEM, key: pair.KeyPEM} {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	echoBin := filepath.Join(kindDir, ".cache", "images", "echo")
	cmd := exec.Command("ip", "netns", "exec", l.name, "runuser", "-u", u.name, "--",
		echoBin, "serve", "-http", fmt.Sprintf("127.0.0.1:%d", port), "-udp", "", "-name", name, "-tls-cert", crt, "-tls-key", key)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(t, 10*time.Second, "local TLS server "+name, func() error {
		_, err := l.curl(context.Background(), fmt.Sprintf("https://127.0.0.1:%d/", port), "-k")
		return err
	})
}
