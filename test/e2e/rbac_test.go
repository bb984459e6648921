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

	if _, err := c.client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "dev"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := c.userRole(t, ns, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "dev", Namespace: ns})
	tr, err := c.client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "dev", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := newLaptop(t, 9)
	u := newTeleUser(t, 9, tokenKubeconfig(t, tr.Status.Token))
	dumpLogs(t, u)
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
		narrow := role.DeepCopy()
		narrow.Name, narrow.ResourceVersion = "no-workloads", ""
		narrow.Rules = nil
		for _, r := range role.Rules {
			if len(r.APIGroups) == 1 && r.APIGroups[0] == "apps" {
				continue
			}
			narrow.Rules = append(narrow.Rules, r)
		}
		if _, err := c.client.RbacV1().Roles(ns).Create(ctx, narrow, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "dev2"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "dev2"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: narrow.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "dev2", Namespace: ns}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr2, err := c.client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "dev2", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		u2 := newTeleUser(t, 13, tokenKubeconfig(t, tr2.Status.Token))
		dumpLogs(t, u2)
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
