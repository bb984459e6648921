//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNamespacedUser: a user whose kubeconfig is a ServiceAccount bound only
// to the Role of docs/permissions.md (deploy/user-role.yaml) in one namespace can connect,
// intercept with --env-file, leave and quit.
func TestNamespacedUser(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "rbac", nil)
	c.deployEcho(t, ns, "echo", 1)
	ctx := ctxFor(t, 10*time.Minute)

	role := c.userRole(t, ns, c.serviceAccount(t, ns, "dev"))
	l := newLaptop(t, 9)
	u := c.saUser(t, ns, "dev", 9)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })

	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect with the namespaced Role: %v\n%s", err, out)
	}
	if out, err := l.curl(ctx, "http://echo."+ns+":8080/"); err != nil || !strings.Contains(out, "echo-") {
		t.Fatalf("curl: %v %s", err, out)
	}
	l.localServer(t, u, 7070, "LAPTOP-R")
	env := filepath.Join(u.home, "echo.env")
	if out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--port", "7070:8080", "--http-match", "x-dev=rbac", "--env-file", env); err != nil {
		t.Fatalf("intercept with the namespaced Role: %v\n%s", err, out)
	}
	if e, _ := os.ReadFile(env); !strings.Contains(string(e), "ECHO_TOKEN=s3cr3t-echo") {
		t.Errorf("--env-file: %s", e)
	}
	if who := served(t, c, ns, "-H", "x-dev=rbac@0", "http://echo:8080/", "http://echo:8080/"); len(who) != 2 || who[0] != "LAPTOP-R" || !strings.HasPrefix(who[1], "echo-") {
		t.Errorf("answered by %v", who)
	}
	if out, err := l.tele(ctx, u, "leave", "echo"); err != nil {
		t.Fatalf("leave: %v\n%s", err, out)
	}
	if out, err := l.tele(ctx, u, "quit"); err != nil {
		t.Fatalf("quit: %v\n%s", err, out)
	}

	t.Run("a user who may not read workloads gets a clear refusal", func(t *testing.T) {
		// The same Role less the workloads: connect still works (the manager
		// runs already), intercept says what is missing and changes nothing.
		c.narrowRole(t, ns, role, "no-workloads", func(r rbacv1.PolicyRule) []string {
			if len(r.APIGroups) == 1 && r.APIGroups[0] == "apps" {
				return nil
			}
			return r.Verbs
		}, c.serviceAccount(t, ns, "dev2"))
		u2 := c.saUser(t, ns, "dev2", 13)
		t.Cleanup(func() { l.tele(context.Background(), u2, "quit") })
		if out, err := l.tele(ctx, u2, "connect", "-n", ns); err != nil {
			t.Fatalf("connect: %v\n%s", err, out)
		}
		agentsBefore := 0
		for _, p := range c.podsOf(t, ns, "echo") {
			agentsBefore += len(p.Spec.EphemeralContainers)
		}
		out, err := l.tele(ctx, u2, "intercept", "deploy/echo", "--port", "7070:8080")
		t.Logf("intercept without workload access said: %s", out)
		if err == nil || !strings.Contains(out, "forbidden") || !strings.Contains(out, "deployments") {
			t.Errorf("intercept without workload access: %v\n%s", err, out)
		}
		agentsAfter := 0
		for _, p := range c.podsOf(t, ns, "echo") {
			agentsAfter += len(p.Spec.EphemeralContainers)
		}
		if agentsAfter != agentsBefore {
			t.Errorf("the refusal added agents: %d -> %d", agentsBefore, agentsAfter)
		}
		if out, _ := l.tele(ctx, u2, "list", "--intercepts"); strings.Contains(out, "deployment/echo") {
			t.Errorf("an intercept exists after the refusal:\n%s", out)
		}
	})
}

// serviceAccount creates ServiceAccount name in ns and returns it as a
// Role's subject.
func (c *cluster) serviceAccount(t *testing.T, ns, name string) rbacv1.Subject {
	t.Helper()
	if _, err := c.client.CoreV1().ServiceAccounts(ns).Create(ctxFor(t, time.Minute), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}
}

// saUser is laptop user n with a kubeconfig holding a token of
// ServiceAccount sa of ns (valid an hour), its logs kept if the test fails.
func (c *cluster) saUser(t *testing.T, ns, sa string, n int) *teleUser {
	t.Helper()
	tr, err := c.client.CoreV1().ServiceAccounts(ns).CreateToken(ctxFor(t, time.Minute), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u := newTeleUser(t, n, tokenKubeconfig(t, tr.Status.Token))
	dumpLogs(t, u)
	return u
}

// narrowRole creates Role name in ns: role's rules, each with the verbs
// verbs returns for it (none: the rule is left out), bound to subjects.
func (c *cluster) narrowRole(t *testing.T, ns string, role *rbacv1.Role, name string, verbs func(rbacv1.PolicyRule) []string, subjects ...rbacv1.Subject) {
	t.Helper()
	narrow := role.DeepCopy()
	narrow.Name, narrow.ResourceVersion = name, ""
	narrow.Rules = nil
	for _, r := range role.Rules {
		if r.Verbs = verbs(r); len(r.Verbs) > 0 {
			narrow.Rules = append(narrow.Rules, r)
		}
	}
	if _, err := c.client.RbacV1().Roles(ns).Create(ctxFor(t, time.Minute), narrow, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.bind(t, ns, name, subjects...)
}
