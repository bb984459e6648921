//go:build e2e

package e2e

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestConnectBadInput: each way connect can be refused says what to do and
// leaves nothing behind: no daemon, no device, the resolver as it was, no
// manager left half-made.
func TestConnectBadInput(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "badinput", nil)
	ctx := ctxFor(t, 10*time.Minute)
	l := newLaptop(t, 3)
	before := l.resolvConf(t)
	kc, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}

	// nothingLeft checks the laptop and the namespace after a refusal.
	nothingLeft := func(t *testing.T, u *teleUser) {
		t.Helper()
		if got := l.resolvConf(t); got != before {
			t.Errorf("resolv.conf changed:\n%s", got)
		}
		if l.hasDevice(ctx, "tele0") {
			t.Error("tele0 left behind")
		}
		if out, _ := exec.Command("ip", "netns", "pids", l.name).Output(); strings.TrimSpace(string(out)) != "" {
			t.Errorf("processes left in the laptop: %s", out)
		}
		if st := l.status(t, ctx, u); st.Phase != "disconnected" {
			t.Errorf("status: %+v", st)
		}
	}
	run := func(t *testing.T, u *teleUser, args ...string) string {
		t.Helper()
		dumpLogs(t, u)
		out, err := l.tele(ctx, u, args...)
		if err == nil {
			t.Fatalf("connect succeeded: %s", out)
		}
		t.Logf("connect said:\n%s", out)
		return out
	}

	t.Run("unreachable API server", func(t *testing.T) {
		u := newTeleUser(t, 3, []byte(strings.Replace(string(kc), ":6443", ":6553", 1)))
		out := run(t, u, "connect", "-n", ns)
		if !strings.Contains(out, "cannot reach the API server at https://10.201.0.1:6553") {
			t.Errorf("message does not say the API server is unreachable")
		}
		nothingLeft(t, u)
	})

	t.Run("namespace where the user may not create Jobs", func(t *testing.T) {
		token := limitedToken(t, c, ns)
		u := newTeleUser(t, 3, tokenKubeconfig(t, token))
		out := run(t, u, "connect", "-n", ns)
		for _, want := range []string{"you may not", "create jobs.batch", `namespace "` + ns + `"`, "Role"} {
			if !strings.Contains(out, want) {
				t.Errorf("message lacks %q", want)
			}
		}
		nothingLeft(t, u)
		if _, err := c.client.BatchV1().Jobs(ns).Get(ctx, managerJob, metav1.GetOptions{}); err == nil {
			t.Error("a manager Job was created")
		}
	})

	t.Run("manager image missing", func(t *testing.T) {
		u := newTeleUser(t, 3, nil)
		start := time.Now()
		out := run(t, u, "connect", "-n", ns, "--manager-image", "10.201.0.1:5000/no-such-image:0")
		if !strings.Contains(out, "cannot be pulled") || !strings.Contains(out, "10.201.0.1:5000/no-such-image:0") {
			t.Errorf("message does not name the image problem")
		}
		if d := time.Since(start); d > time.Minute {
			t.Errorf("took %s: ImagePullBackOff must be reported, not waited on", d)
		}
		nothingLeft(t, u)
		eventually(t, 30*time.Second, "manager Job left behind", func() error {
			if _, err := c.client.BatchV1().Jobs(ns).Get(ctx, managerJob, metav1.GetOptions{}); err == nil {
				return fmt.Errorf("job %s still exists", managerJob)
			}
			return nil
		})
	})

	t.Run("no /dev/net/tun", func(t *testing.T) {
		u := newTeleUser(t, 3, nil)
		dumpLogs(t, u)
		// A mount namespace where /dev/net is empty, as on a machine without
		// the tun module; sudo and the helper inherit it.
		cmd := exec.CommandContext(ctx, "unshare", "-m", "sh", "-c",
			`mount -t tmpfs none /dev/net && exec ip netns exec "$0" runuser -u "$1" -- env HOME="$2" "$3" --kubeconfig "$4" connect -n "$5" --manager-idle-timeout=10s`,
			l.name, u.name, u.home, teleBin, u.kubeconfig, ns)
		outb, err := cmd.CombinedOutput()
		out := string(outb)
		t.Logf("connect said:\n%s", out)
		if err == nil {
			t.Fatal("connect succeeded without /dev/net/tun")
		}
		if !strings.Contains(out, "no TUN support") || !strings.Contains(out, "modprobe tun") {
			t.Errorf("message does not say TUN is missing")
		}
		nothingLeft(t, u)
	})
}

// limitedToken makes a ServiceAccount that may read pods and port-forward in
// ns but not create Jobs, and returns a token for it.
func limitedToken(t *testing.T, c *cluster, ns string) string {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	if _, err := c.client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "limited"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "limited"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "services"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"create"}},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"get", "list"}},
	}}
	if _, err := c.client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "limited"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "limited"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "limited", Namespace: ns}}}
	if _, err := c.client.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := c.client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "limited", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// tokenKubeconfig is a kubeconfig for the local cluster with a bearer token.
func tokenKubeconfig(t *testing.T, token string) []byte {
	t.Helper()
	ca, err := os.ReadFile(kindDir + "/.cluster/pki/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: tele-local
  cluster: {server: "https://10.201.0.1:6443", certificate-authority-data: %s}
users:
- name: limited
  user: {token: %q}
contexts:
- name: limited
  context: {cluster: tele-local, user: limited}
current-context: limited
`, base64.StdEncoding.EncodeToString(ca), token))
}
