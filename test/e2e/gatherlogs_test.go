//go:build e2e

package e2e

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-tele/kubectl-tele/internal/tgz"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
)

// TestGatherLogs: after a connect and an intercept, gather-logs writes one
// archive, readable only by its user, that names every log a bug report
// needs (the daemon's, the helper's, the manager's, the agent's), the
// status, the versions and the resolver's settings, and holds none of the
// user's credentials, no private key and not the agents' token.
func TestGatherLogs(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "gather", nil)
	c.deployEcho(t, ns, "echo", 1)
	ctx := ctxFor(t, 10*time.Minute)
	d := connectDevelopers(ctx, t, ns, 37)
	l, u := d[0].l, d[0].u
	l.localServer(t, u, 7094, "LAPTOP-G")
	if out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--port", "7094:8080", "--http-match", "x-dev=gather"); err != nil {
		t.Fatalf("intercept: %v\n%s", err, out)
	}
	if who := served(t, c, ns, "-H", "x-dev=gather@0", "http://echo:8080/"); len(who) != 1 || who[0] != "LAPTOP-G" {
		t.Fatalf("intercepted request answered by %v, want LAPTOP-G", who)
	}

	archive := filepath.Join(u.home, "tele-logs.tar.gz")
	start := time.Now()
	out, err := l.tele(ctx, u, "gather-logs", "-o", archive)
	if err != nil {
		t.Fatalf("gather-logs: %v\n%s", err, out)
	}
	t.Logf("gather-logs (%s): %s", time.Since(start).Round(time.Millisecond), out)
	fi, err := os.Stat(archive)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("archive mode %v, want 0600", fi.Mode().Perm())
	}
	files, err := tgz.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	t.Logf("archive files:\n  %s", strings.Join(names, "\n  "))
	for _, want := range []string{
		`^tele-logs/laptop/daemon\.log$`,
		`^tele-logs/laptop/helper\.log$`,
		`^tele-logs/cluster/manager/` + ns + `_kubectl-tele-manager-[a-z0-9]+\.log$`,
		`^tele-logs/cluster/agents/` + ns + `_echo-[a-z0-9]+-[a-z0-9]+_tele-agent\.log$`,
		`^tele-logs/status\.json$`,
		`^tele-logs/intercepts\.json$`,
		`^tele-logs/versions\.txt$`,
		`^tele-logs/resolver/resolv\.conf$`,
		`^tele-logs/README\.txt$`,
	} {
		re := regexp.MustCompile(want)
		i := slices.IndexFunc(names, re.MatchString)
		if i < 0 {
			t.Errorf("no file in the archive matches %s", want)
			continue
		}
		if len(files[names[i]]) == 0 {
			t.Errorf("%s is empty", names[i])
		}
	}
	// The user may read all of it: the session's files and, as the
	// namespace's developer, its pods' logs. (A resolver tool this laptop
	// lacks, or root's own state, may be noted; that is the laptop's.)
	for _, n := range names {
		if (strings.HasSuffix(n, ".refused.txt") || strings.HasSuffix(n, ".error.txt")) && !strings.HasPrefix(n, "tele-logs/resolver/") {
			t.Errorf("%s: %s", n, files[n])
		}
	}
	if s := files["tele-logs/status.json"]; !strings.Contains(s, `"namespace": "`+ns+`"`) {
		t.Errorf("status.json does not name the session's namespace:\n%s", s)
	}
	if s := files["tele-logs/versions.txt"]; !strings.Contains(s, "Client Version:") || !strings.Contains(s, "Manager Version:") || !strings.Contains(s, "Kubernetes Version:") {
		t.Errorf("versions.txt:\n%s", s)
	}

	// The secrets the archive must not hold: the user's credentials from
	// their kubeconfig (client key, token), any private key, the agents'
	// token.
	secrets := map[string]string{"PRIVATE KEY": "PRIVATE KEY"}
	kc, err := clientcmd.LoadFromFile(u.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for name, ai := range kc.AuthInfos {
		if len(ai.ClientKeyData) > 0 {
			secrets[name+" client key (base64)"] = base64.StdEncoding.EncodeToString(ai.ClientKeyData)[:40]
			// A line of the key's PEM body.
			lines := strings.Split(string(ai.ClientKeyData), "\n")
			secrets[name+" client key (PEM)"] = lines[1]
		}
		if ai.Token != "" {
			secrets[name+" token"] = ai.Token
		}
	}
	sec, err := c.client.CoreV1().Secrets(ns).Get(ctx, objects.AgentSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tok := string(sec.Data["token"]); tok != "" {
		secrets["agent token"] = tok
	} else {
		t.Errorf("secret %s has no token", objects.AgentSecret)
	}
	for _, n := range names {
		for what, s := range secrets {
			if strings.Contains(files[n], s) {
				t.Errorf("%s holds the %s", n, what)
			}
		}
	}
	t.Logf("checked %d files for %d secrets", len(names), len(secrets))
}
