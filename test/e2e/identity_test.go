//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// clusterSigner is the local cluster's CA, which signs its client
// certificates (hack/kind/pki.sh).
func clusterSigner(t *testing.T) (*x509.Certificate, any) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(kindDir, ".cluster", "pki", "ca.crt"), filepath.Join(kindDir, ".cluster", "pki", "ca.key"))
	if err != nil {
		t.Fatalf("the cluster's CA: %v", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert, pair.PrivateKey
}

// clientCert makes a client certificate for user cn signed by ca (a
// fresh self-signed CA of the same name when ca is nil: a forgery), and
// returns it and its key in PEM.
func clientCert(t *testing.T, cn string, ca *x509.Certificate, caKey any) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if ca == nil {
		ca = &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		caKey = key
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(2 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// kubeconfigWith is a kubeconfig for the local cluster whose user is the
// YAML flow mapping user (client-certificate-data, exec, ...).
func kubeconfigWith(t *testing.T, name, user string) []byte {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(kindDir, ".cluster", "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: tele-local
  cluster: {server: "https://10.201.0.1:6443", certificate-authority-data: %s}
users:
- name: %s
  user: %s
contexts:
- name: %s
  context: {cluster: tele-local, user: %s}
current-context: %s
`, base64.StdEncoding.EncodeToString(ca), name, user, name, name, name))
}

func certKubeconfig(t *testing.T, name string, certPEM, keyPEM []byte) []byte {
	return kubeconfigWith(t, name, fmt.Sprintf("{client-certificate-data: %s, client-key-data: %s}",
		base64.StdEncoding.EncodeToString(certPEM), base64.StdEncoding.EncodeToString(keyPEM)))
}

// userRole creates the Role of docs/permissions.md (deploy/user-role.yaml) in ns, binds
// it to subjects and returns it.
func (c *cluster) userRole(t *testing.T, ns string, subjects ...rbacv1.Subject) *rbacv1.Role {
	t.Helper()
	return c.roleFile(t, ns, "user-role.yaml", subjects...)
}

// roleFile creates the Role of deploy/FILE in ns, binds it to subjects and
// returns it.
func (c *cluster) roleFile(t *testing.T, ns, file string, subjects ...rbacv1.Subject) *rbacv1.Role {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", file))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.Role
	if err := yaml.Unmarshal(b, &role); err != nil {
		t.Fatalf("deploy/%s: %v", file, err)
	}
	if _, err := c.client.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.bind(t, ns, role.Name, subjects...)
	return &role
}

func (c *cluster) bind(t *testing.T, ns, role string, subjects ...rbacv1.Subject) {
	t.Helper()
	if _, err := c.client.RbacV1().RoleBindings(ns).Create(ctxFor(t, time.Minute), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role + "-users"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
		Subjects:   subjects,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func userSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

// agentCount is how many ephemeral containers the pods of app have.
func (c *cluster) agentCount(t *testing.T, ns, app string) int {
	n := 0
	for _, p := range c.podsOf(t, ns, app) {
		n += len(p.Spec.EphemeralContainers)
	}
	return n
}

// TestAttacker: someone who may only list pods and port-forward reaches
// the manager, as an attacker would, with a client written against the
// protocol, while a developer holds an intercept: the manager refuses to
// intercept for them, naming what they lack, and changes nothing; a forged
// certificate, a replayed proof and a guessed nonce do not get in.
func TestAttacker(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "attacker", nil)
	c.deployEcho(t, ns, "echo", 2)
	ctx := ctxFor(t, 10*time.Minute)

	// The attacker's client, built for the laptop.
	bin := filepath.Join(filepath.Dir(teleBin), "tele-attacker")
	build := exec.CommandContext(ctx, "go", "build", "-tags", "e2e", "-o", bin, "./test/e2e/attacker")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the attacker: %v\n%s", err, out)
	}
	os.Chmod(bin, 0o755)

	// A developer holds an intercept.
	dev := connectDevelopers(ctx, t, ns, 15)[0]
	dev.l.localServer(t, dev.u, 7070, "LAPTOP-DEV")
	if out, err := dev.l.tele(ctx, dev.u, "intercept", "deploy/echo", "--port", "7070:8080", "--http-match", "x-dev=dev"); err != nil {
		t.Fatalf("intercept: %v\n%s", err, out)
	}
	agents := c.agentCount(t, ns, "echo")

	// Mallory may read pods and port-forward, nothing else.
	if _, err := c.client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "port-forward-only"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"create"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.bind(t, ns, "port-forward-only", userSubject("mallory"))
	ca, caKey := clusterSigner(t)
	crt, key := clientCert(t, "mallory", ca, caKey)
	mallory := newTeleUser(t, 16, certKubeconfig(t, "mallory", crt, key))
	forgedCrt, forgedKey := clientCert(t, "alice", nil, nil)
	for name, b := range map[string][]byte{"forged.crt": forgedCrt, "forged.key": forgedKey} {
		if err := os.WriteFile(filepath.Join(mallory.home, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chown(filepath.Join(mallory.home, name), mallory.uid, -1)
	}
	l := newLaptop(t, 16)
	out, err := l.as(ctx, mallory, bin, "-kubeconfig", mallory.kubeconfig, "-namespace", ns, "-app", "echo",
		"-forged-cert", filepath.Join(mallory.home, "forged.crt"), "-forged-key", filepath.Join(mallory.home, "forged.key"))
	t.Logf("the attacker:\n%s", out)
	if err != nil {
		t.Fatalf("attacker: %v", err)
	}
	for _, want := range []string{
		`(?m)^arrived as mallory$`,
		`(?m)^intercept: PermissionDenied: mallory may not patch pods/ephemeralcontainers echo-\S+, patch pods/ephemeralcontainers echo-\S+, update services echo in namespace ` + ns,
		`(?m)^forged: Unauthenticated: client certificate "alice": x509: certificate signed by unknown authority`,
		`(?m)^replay: Unauthenticated: .*used already`,
		`(?m)^guessed-nonce: Unauthenticated: .*did not give`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("the attacker's output does not match %s", want)
		}
	}
	if n := c.agentCount(t, ns, "echo"); n != agents {
		t.Errorf("the pods' ephemeral containers: %d, were %d", n, agents)
	}
	list, _ := dev.l.tele(ctx, dev.u, "list", "--intercepts")
	if strings.Contains(list, "mallory") || strings.Count(list, "deployment/echo") != 1 {
		t.Errorf("list after the attack:\n%s", list)
	}
	if who := served(t, c, ns, "-H", "x-dev=dev@0", "http://echo:8080/", "http://echo:8080/"); len(who) != 2 || who[0] != "LAPTOP-DEV" || !strings.HasPrefix(who[1], "echo-") {
		t.Errorf("answered by %v", who)
	}

	t.Run("the plugin of a user who may not attach agents exits 5", func(t *testing.T) {
		// The user Role (deploy/user-role.yaml) less pods/ephemeralcontainers (and so unable
		// to start a manager, but one runs): a ServiceAccount's token.
		b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "user-role.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var role rbacv1.Role
		if err := yaml.Unmarshal(b, &role); err != nil {
			t.Fatal(err)
		}
		role.Name, role.Rules = "no-agents", slices.DeleteFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
			return slices.Contains(r.Resources, "pods/ephemeralcontainers")
		})
		if _, err := c.client.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "eve"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.bind(t, ns, role.Name, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "eve", Namespace: ns})
		tr, err := c.client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "eve", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		eve := newTeleUser(t, 16, tokenKubeconfig(t, tr.Status.Token))
		dumpLogs(t, eve)
		t.Cleanup(func() { l.tele(context.Background(), eve, "quit") })
		if out, err := l.tele(ctx, eve, "connect", "-n", ns); err != nil {
			t.Fatalf("connect: %v\n%s", err, out)
		}
		out, err := l.tele(ctx, eve, "intercept", "deploy/echo", "--port", "7071:8080", "--http-match", "x-dev=eve")
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if want := "system:serviceaccount:" + ns + ":eve may not patch pods/ephemeralcontainers echo-"; code != 5 || !strings.Contains(out, want) {
			t.Errorf("intercept: exit %d (%v), want 5 and %q:\n%s", code, err, want, out)
		}
		if n := c.agentCount(t, ns, "echo"); n != agents {
			t.Errorf("the pods' ephemeral containers: %d, were %d", n, agents)
		}
	})
}

// TestIdentities: two client-certificate users and an exec-plugin user,
// each bound to the user Role (deploy/user-role.yaml) alone, connect from laptops of their
// own, intercept with their own headers, see each other's intercepts under
// the names the API server gives them, and cannot leave each other's.
func TestIdentities(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "identities", nil)
	c.deployEcho(t, ns, "echo", 2)
	ctx := ctxFor(t, 10*time.Minute)

	if _, err := c.client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ci"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.userRole(t, ns, userSubject("alice"), userSubject("bob"), rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "ci", Namespace: ns})
	ca, caKey := clusterSigner(t)
	tr, err := c.client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "ci", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	type dev struct {
		who, header string
		l           *laptop
		u           *teleUser
	}
	var devs []dev
	for i, who := range []string{"alice", "bob", "ci"} {
		n := 17 + i
		var kc []byte
		var u *teleUser
		if who == "ci" {
			// An exec plugin, as EKS, GKE, AKS and OIDC logins are: it
			// prints an ExecCredential with the ServiceAccount's token.
			u = newTeleUser(t, n, []byte("placeholder"))
			cred, _ := json.Marshal(map[string]any{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
				"status": map[string]any{"token": tr.Status.Token}})
			script := filepath.Join(u.home, "credential.sh")
			if err := os.WriteFile(script, []byte("#!/bin/sh\ncat <<'EOF'\n"+string(cred)+"\nEOF\n"), 0o700); err != nil {
				t.Fatal(err)
			}
			os.Chown(script, u.uid, -1)
			kc = kubeconfigWith(t, "ci", fmt.Sprintf("{exec: {apiVersion: client.authentication.k8s.io/v1, command: %s, interactiveMode: Never}}", script))
			if err := os.WriteFile(u.kubeconfig, kc, 0o600); err != nil {
				t.Fatal(err)
			}
		} else {
			crt, key := clientCert(t, who, ca, caKey)
			u = newTeleUser(t, n, certKubeconfig(t, who, crt, key))
		}
		d := dev{who: who, header: "x-dev=" + who, l: newLaptop(t, n), u: u}
		dumpLogs(t, d.u)
		t.Cleanup(func() { d.l.tele(context.Background(), d.u, "quit") })
		if out, err := d.l.tele(ctx, d.u, "connect", "-n", ns); err != nil {
			t.Fatalf("connect as %s: %v\n%s", who, err, out)
		}
		devs = append(devs, d)
	}
	identity := map[string]string{"alice": "alice", "bob": "bob", "ci": "system:serviceaccount:" + ns + ":ci"}
	proven := map[string]string{"alice": "client certificate", "bob": "client certificate", "ci": "bearer token"}
	for i, d := range devs {
		out, err := d.l.tele(ctx, d.u, "status")
		if want := `(?m)^Identity: +` + regexp.QuoteMeta(identity[d.who]+" (proven to the manager by "+proven[d.who]+")") + `$`; err != nil || !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("status of %s: %v\n%s\nwant %s", d.who, err, out, want)
		}
		port := 7070 + i
		d.l.localServer(t, d.u, port, "LAPTOP-"+strings.ToUpper(d.who))
		if out, err := d.l.tele(ctx, d.u, "intercept", "deploy/echo", "--name", "echo-"+d.who, "--port", fmt.Sprintf("%d:8080", port), "--http-match", d.header); err != nil {
			t.Fatalf("intercept as %s: %v\n%s", d.who, err, out)
		}
	}
	who := served(t, c, ns, "-H", "x-dev=alice@0", "-H", "x-dev=bob@1", "-H", "x-dev=ci@2", "http://echo:8080/", "http://echo:8080/", "http://echo:8080/", "http://echo:8080/")
	if len(who) != 4 || who[0] != "LAPTOP-ALICE" || who[1] != "LAPTOP-BOB" || who[2] != "LAPTOP-CI" || !strings.HasPrefix(who[3], "echo-") {
		t.Errorf("answered by %v", who)
	}
	for _, viewer := range devs {
		out, _ := viewer.l.tele(ctx, viewer.u, "list", "--intercepts")
		for _, d := range devs {
			re := `(?m)^deployment/echo .* echo-` + d.who + ` +8080 +` + regexp.QuoteMeta(d.header) + ` .* ` + regexp.QuoteMeta(identity[d.who]) + ` \(on ` + regexp.QuoteMeta(d.u.name) + `@\S+\)`
			if d.who == viewer.who {
				re += ` \(you\)`
			}
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("%s's list does not show %s's intercept as %s:\n%s", viewer.who, d.who, re, out)
			}
		}
	}
	// Nobody leaves another's.
	for i, d := range devs {
		other := devs[(i+1)%len(devs)]
		out, err := d.l.tele(ctx, d.u, "leave", "echo-"+other.who)
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 5 || !strings.Contains(out, "not yours: it belongs to "+identity[other.who]+" (on "+other.u.name+"@") {
			t.Errorf("%s leaves %s's intercept: exit %d (%v)\n%s", d.who, other.who, code, err, out)
		}
	}
	for _, d := range devs {
		if out, err := d.l.tele(ctx, d.u, "leave", "echo-"+d.who); err != nil {
			t.Errorf("%s leaves their own: %v\n%s", d.who, err, out)
		}
	}
}
