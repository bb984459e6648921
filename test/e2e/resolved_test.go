//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Laptops whose resolver is systemd-resolved (hack/kind/laptop.sh
// up-resolved), as Ubuntu ("stub": glibc's DNS to resolved's stub) and
// Fedora ("nss": nsswitch's nss-resolve) desktops have it. Their own
// upstream DNS is dnsrec, which logs every query: the leak counter.

var (
	dnsrecOnce sync.Once
	dnsrecBin  = filepath.Join(repoRoot, "bin", "dnsrec")
	dnsrecErr  error
)

// newResolvedLaptop makes laptop n with systemd-resolved in style "stub" or
// "nss".
func newResolvedLaptop(t *testing.T, n int, style string) *laptop {
	t.Helper()
	dnsrecOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = "/usr/local/go/bin/go"
		}
		cmd := exec.Command(goBin, "build", "-o", dnsrecBin, "./test/e2e/dnsrec")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			dnsrecErr = fmt.Errorf("build dnsrec: %v: %s", err, out)
		}
	})
	if dnsrecErr != nil {
		t.Fatal(dnsrecErr)
	}
	n += 60 * e2eSlot()
	cmd := exec.Command(filepath.Join(kindDir, "laptop.sh"), "up-resolved", fmt.Sprint(n), style)
	cmd.Env = append(os.Environ(), "DNSREC="+dnsrecBin)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("resolved laptop %d: %v\n%s%s", n, err, out, stderr)
	}
	var holder int
	if _, err := fmt.Sscan(string(out), &holder); err != nil {
		t.Fatalf("resolved laptop %d: holder %q: %v", n, out, err)
	}
	l := &laptop{n: n, name: fmt.Sprintf("tele-lap%d", n), holder: holder}
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"resolved.log", "upstream.log"} {
				b, _ := os.ReadFile(filepath.Join(l.stateDir(), f))
				saveLog(t, l.name+"_"+strings.TrimSuffix(f, ".log"), b)
			}
		}
		_ = exec.Command(filepath.Join(kindDir, "laptop.sh"), "down", fmt.Sprint(n)).Run()
	})
	return l
}

func (l *laptop) stateDir() string { return "/tmp/tele-laptop-" + l.name }

// upstreamQueries are the queries the laptop's own DNS server got so far.
func (l *laptop) upstreamQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.stateDir(), "upstream.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), "\n", "\t"))
}

// resolvectl runs resolved's client (unpacked, not installed) as root in l.
func (l *laptop) resolvectl(ctx context.Context, args ...string) (string, error) {
	rd := os.Getenv("TELE_RESOLVED_DIR")
	if rd == "" {
		rd = filepath.Join(kindDir, ".cache", "systemd-resolved")
	}
	return l.run(ctx, append([]string{filepath.Join(rd, "usr", "bin", "resolvectl")}, args...)...)
}

// nameForm is one name of the table and the address it must have.
type nameForm struct{ name, ip string }

// clusterNameForms are every name form of issue 22's table, in namespace
// ns: a Service (web), a StatefulSet's pod (db-0.db), a pod by its IP, and
// Services of other namespaces.
func (c *cluster) clusterNameForms(t *testing.T, ctx context.Context, ns string) []nameForm {
	t.Helper()
	c.deployEcho(t, ns, "web", 1)
	c.deployStatefulSet(t, ns, "db", 1)
	svc, err := c.client.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	db0, err := c.client.CoreV1().Pods(ns).Get(ctx, "db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kube, err := c.client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeDNS, err := c.client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web, db := svc.Spec.ClusterIP, db0.Status.PodIP
	return []nameForm{
		{"web", web},
		{"web." + ns, web},
		{"web." + ns + ".svc", web},
		{"web." + ns + ".svc.cluster.local", web},
		{"db-0.db", db},
		{"db-0.db." + ns, db},
		{strings.ReplaceAll(db, ".", "-") + "." + ns + ".pod", db},
		{"kubernetes.default", kube.Spec.ClusterIP},
		{"kube-dns.kube-system", kubeDNS.Spec.ClusterIP},
	}
}

// leaks are the queries of upstream that name something of the cluster.
func leaks(queries []string, ns string) []string {
	var out []string
	for _, q := range queries {
		if strings.HasPrefix(q, "nosuch.") {
			continue // not a cluster name: the laptop's DNS says it does not exist
		}
		if strings.Contains(q, ns) || strings.Contains(q, "cluster.local") || strings.Contains(q, "kubernetes.default") ||
			strings.Contains(q, "kube-system") || strings.HasSuffix(q, ".pod.") || strings.HasPrefix(q, "web.") || strings.HasPrefix(q, "db-0.") {
			out = append(out, q)
		}
	}
	return out
}

// TestResolvedNames (issue 22): on laptops whose resolver is systemd-resolved,
// in both nsswitch styles, every name form of the table resolves to
// the right address and answers, with no query for a cluster name reaching
// the laptop's own DNS; nosuch.NS is NXDOMAIN at once; connect's self-check
// says every form works; quit and a kill -9 of the daemon leave resolved
// with no tele0 settings and the laptop's own names resolving. The plain
// resolv.conf laptop is measured the same way, for the table.
func TestResolvedNames(t *testing.T) {
	c := newCluster(t)
	ctx := ctxFor(t, 15*time.Minute)
	ns := c.namespace(t, "rsv", nil)
	forms := c.clusterNameForms(t, ctx, ns)
	table := map[string][]string{}
	for i, kind := range []struct {
		name   string
		style  string   // "" for a plain laptop
		getent []string // how a program of that laptop resolves
	}{
		{"resolved-stub", "stub", []string{"getent", "-s", "dns", "hosts"}},
		{"nss-resolve", "nss", []string{"getent", "-s", "resolve", "hosts"}},
		{"plain", "", []string{"getent", "hosts"}},
	} {
		t.Run(kind.name, func(t *testing.T) {
			n := 56 + i
			u := newTeleUser(t, n, nil)
			dumpLogs(t, u)
			var l *laptop
			var plainUpstream *upstreamRecorder
			if kind.style == "" {
				l = newLaptop(t, n)
				plainUpstream = l.startUpstream(t)
			} else {
				l = newResolvedLaptop(t, n, kind.style)
			}
			queries := func() []string {
				if plainUpstream != nil {
					return plainUpstream.asked()
				}
				return l.upstreamQueries(t)
			}
			t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
			out, err := l.tele(ctx, u, "connect", "-n", ns, "--manager-idle-timeout=30s")
			if err != nil {
				t.Fatalf("connect: %v\n%s", err, out)
			}
			t.Logf("connect:\n%s", out)
			if !strings.Contains(out, "all resolve") {
				t.Errorf("connect's self-check does not say every form resolves:\n%s", out)
			}
			st := l.status(t, ctx, u)
			wantMode := "systemd-resolved"
			if kind.style == "" {
				wantMode = "resolv.conf"
			}
			if st.DNS.Mode != wantMode {
				t.Errorf("DNS mode %q, want %s", st.DNS.Mode, wantMode)
			}
			before := len(queries())
			var row []string
			for _, f := range forms {
				err := waitFor(30*time.Second, func() error {
					out, err := l.as(ctx, u, append(kind.getent, f.name)...)
					if fields := strings.Fields(out); err != nil || len(fields) == 0 || fields[0] != f.ip {
						return fmt.Errorf("%s %s: %v %q, want %s", strings.Join(kind.getent, " "), f.name, err, out, f.ip)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					row = append(row, f.name+"=FAILS")
				} else {
					row = append(row, f.name+"=ok")
				}
			}
			for _, url := range []string{"http://web:8080/", "http://web." + ns + ":8080/", "http://db-0.db." + ns + ":8080/"} {
				if out, err := l.as(ctx, u, "curl", "-sS", "--max-time", "3", url); err != nil {
					t.Errorf("curl %s: %v %s", url, err, out)
				}
			}
			leaked := leaks(queries()[before:], ns)
			if len(leaked) > 0 {
				t.Errorf("the laptop's own DNS was asked about cluster names: %q", leaked)
			}
			row = append(row, fmt.Sprintf("leaks=%d", len(leaked)))

			if kind.style == "" {
				// The plain laptop's own DNS (startUpstream) answers every
				// name, nosuch.NS too: quit and crashes have their tests.
				table[kind.name] = row
				return
			}
			// A name under a namespace that does not exist: NXDOMAIN, at
			// once (it used to go round between resolved and the daemon).
			start := time.Now()
			out, err = l.as(ctx, u, append(kind.getent, "nosuch."+ns)...)
			took := time.Since(start)
			var ee *exec.ExitError
			if !asExit(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("nosuch.%s: %v %q, want not found (exit 2)", ns, err, out)
			}
			t.Logf("nosuch.%s: not found in %s", ns, took.Round(time.Millisecond))
			if took > time.Second {
				t.Errorf("nosuch.%s took %s, want NXDOMAIN within 1s", ns, took.Round(time.Millisecond))
			}
			row = append(row, "nosuch="+took.Round(time.Millisecond).String())
			table[kind.name] = row
			checkResolvedClean := func(when string) {
				t.Helper()
				out, err := l.resolvectl(ctx, "status")
				if err != nil || strings.Contains(out, "tele0") || strings.Contains(out, st.DNS.Nameserver) {
					t.Errorf("%s: resolved still has settings of the session (%v):\n%s", when, err, out)
				}
				if out, err := l.as(ctx, u, append(kind.getent, "printer.lan")...); err != nil || !strings.Contains(out, "192.0.2.80") {
					t.Errorf("%s: the laptop's own name printer.lan: %v %q", when, err, out)
				}
			}
			if out, err := l.tele(ctx, u, "quit"); err != nil {
				t.Fatalf("quit: %v\n%s", err, out)
			}
			checkResolvedClean("after quit")

			if out, err := l.tele(ctx, u, "connect", "-n", ns, "--manager-idle-timeout=30s"); err != nil {
				t.Fatalf("connect again: %v\n%s", err, out)
			}
			st = l.status(t, ctx, u)
			if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
				t.Fatalf("kill -9 the daemon %d: %v", st.PID, err)
			}
			// The TUN device goes with the daemon, and resolved forgets
			// its link: nothing waits for a command.
			if err := waitFor(10*time.Second, func() error {
				if l.hasDevice(ctx, "tele0") {
					return fmt.Errorf("tele0 is still there")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			checkResolvedClean("after kill -9")
			out, err = l.tele(ctx, u, "status")
			if err != nil || !strings.Contains(out, "repaired") {
				t.Errorf("status after the crash: %v\n%s", err, out)
			}
			checkResolvedClean("after the repair")
		})
	}
	for _, k := range []string{"plain", "resolved-stub", "nss-resolve"} {
		t.Logf("%-13s %s", k, strings.Join(table[k], " "))
	}
}

// TestResolvedSelfCheck (issue 22): on a Fedora-style laptop (nss-resolve),
// a namespace made after connect resolves as NAME.NS (the daemon brings the
// routing domains up to date through the helper), and with the namespace's
// routing domain taken away by hand, the self-check in status names the
// form that broke and what to do.
func TestResolvedSelfCheck(t *testing.T) {
	c := newCluster(t)
	ctx := ctxFor(t, 10*time.Minute)
	ns := c.namespace(t, "rsc", nil)
	u := newTeleUser(t, 59, nil)
	dumpLogs(t, u)
	l := newResolvedLaptop(t, 59, "nss")
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns, "--manager-idle-timeout=30s"); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}

	t.Run("a namespace made after connect", func(t *testing.T) {
		later := c.namespace(t, "rsl", nil)
		svc, err := c.client.CoreV1().Services(later).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "probe"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := waitFor(60*time.Second, func() error {
			out, err := l.as(ctx, u, "getent", "-s", "resolve", "hosts", "probe."+later)
			if err != nil || !strings.Contains(out, svc.Spec.ClusterIP) {
				return fmt.Errorf("probe.%s: %v %q, want %s", later, err, out, svc.Spec.ClusterIP)
			}
			return nil
		}); err != nil {
			out, _ := l.resolvectl(ctx, "domain")
			t.Fatalf("%v\nresolvectl domain:\n%s", err, out)
		}
	})

	t.Run("without the namespace's routing domain", func(t *testing.T) {
		// What connect sets, less ~NS.
		domains := []string{ns + ".svc.cluster.local", "svc.cluster.local", "cluster.local", "~svc", "~pod", "~default", "~kube-system"}
		var last statusChecks
		err := waitFor(60*time.Second, func() error {
			// Again on every try: a namespace made by another test makes
			// the daemon set the full list again.
			if out, err := l.resolvectl(ctx, append([]string{"domain", "tele0"}, domains...)...); err != nil {
				return fmt.Errorf("resolvectl domain: %v %s", err, out)
			}
			l.resolvectl(ctx, "flush-caches")
			out, err := l.tele(ctx, u, "status", "-o", "json")
			if err != nil {
				return fmt.Errorf("status: %v %s", err, out)
			}
			last = statusChecks{}
			if err := json.Unmarshal([]byte(out), &last); err != nil {
				return err
			}
			for _, c := range last.DNS.Checks {
				if c.Form == "svc.ns" && !c.OK && strings.Contains(c.Hint, "~"+ns) {
					return nil
				}
			}
			return fmt.Errorf("the self-check does not name the broken form svc.ns: %+v", last.DNS.Checks)
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range last.DNS.Checks {
			t.Logf("self-check %s (%s): ok=%v %s %s", c.Form, c.Name, c.OK, c.Detail, c.Hint)
			if c.Form != "svc.ns" && !c.OK {
				t.Errorf("form %s fails too: %s", c.Form, c.Detail)
			}
		}
		out, _ := l.tele(ctx, u, "status")
		if !strings.Contains(out, "does NOT resolve") {
			t.Errorf("status does not say a form fails:\n%s", out)
		}
		t.Logf("status:\n%s", out)
	})
}

// statusChecks is the self-check part of status -o json.
type statusChecks struct {
	DNS struct {
		RoutingDomains []string `json:"routingDomains"`
		Checks         []struct {
			Form   string `json:"form"`
			Name   string `json:"name"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
			Hint   string `json:"hint"`
		} `json:"checks"`
	} `json:"dns"`
}

// waitFor retries f every 250 ms for up to d, and returns its last error.
func waitFor(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		// Sleep: the poll interval of waitFor, the helper for conditions (the
		// system resolver's state) that give no event.
		time.Sleep(250 * time.Millisecond)
	}
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}
