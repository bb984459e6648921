//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The plugin as the e2e tests run it: copied where every user can run it, and
// allowed, through sudo, to run its helper as root, as a real user's machine
// would be set up.
var (
	installOnce sync.Once
	installErr  error
	teleBin     = fmt.Sprintf("/tmp/tele-e2e%s/kubectl-tele", slotSuffix())
)

// E2E_SLOT (0..3, default 0) lets several checkouts run e2e tests against
// one cluster at once: each slot has its own laptops (numbers shifted by
// 60), Unix users and installed plugin.
func e2eSlot() int {
	n, err := strconv.Atoi(os.Getenv("E2E_SLOT"))
	if err != nil || n < 0 || n > 3 {
		return 0
	}
	return n
}

func slotSuffix() string {
	if s := e2eSlot(); s > 0 {
		return fmt.Sprint("-", s)
	}
	return ""
}

func installPlugin(t *testing.T) {
	t.Helper()
	installOnce.Do(func() {
		src := filepath.Join(repoRoot, "bin", "kubectl-tele")
		if _, err := os.Stat(src); err != nil {
			installErr = fmt.Errorf("no plugin at %s (make e2e builds it with the image): %w", src, err)
			return
		}
		os.MkdirAll(filepath.Dir(teleBin), 0o755)
		if out, err := exec.Command("install", "-m", "0755", src, teleBin).CombinedOutput(); err != nil {
			installErr = fmt.Errorf("install plugin: %v: %s", err, out)
		}
	})
	if installErr != nil {
		t.Fatal(installErr)
	}
}

// teleUser is an ordinary user of a laptop, with its own kubeconfig and the
// right to run `kubectl-tele helper` through sudo, and nothing else as root.
type teleUser struct {
	name       string
	uid        int
	home       string
	kubeconfig string
}

func newTeleUser(t *testing.T, n int, kubeconfigData []byte) *teleUser {
	t.Helper()
	installPlugin(t)
	name := fmt.Sprintf("tele-user%d", n+60*e2eSlot())
	if _, err := user.Lookup(name); err != nil {
		if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v: %s", name, err, out)
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	sudoers := fmt.Sprintf("%s ALL=(root) NOPASSWD: %s helper *\n", name, teleBin)
	if err := os.WriteFile("/etc/sudoers.d/kubectl-tele-e2e-"+name, []byte(sudoers), 0o440); err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(u.HomeDir, "kubeconfig")
	if kubeconfigData == nil {
		kubeconfigData, err = os.ReadFile(kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(kc, kubeconfigData, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(kc, uid, -1)
	// Logs of earlier runs would confuse a failure's diagnosis.
	os.RemoveAll(filepath.Join(u.HomeDir, ".cache", "kubectl-tele"))
	return &teleUser{name: name, uid: uid, home: u.HomeDir, kubeconfig: kc}
}

// tele runs kubectl-tele as u inside laptop l.
func (l *laptop) tele(ctx context.Context, u *teleUser, args ...string) (string, error) {
	full := append([]string{"runuser", "-u", u.name, "--", "env", "HOME=" + u.home, "XDG_CACHE_HOME=" + filepath.Join(u.home, ".cache"), "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		teleBin, "--kubeconfig", u.kubeconfig}, args...)
	return l.run(ctx, full...)
}

// as runs a command as u inside laptop l.
func (l *laptop) as(ctx context.Context, u *teleUser, args ...string) (string, error) {
	return l.run(ctx, append([]string{"runuser", "-u", u.name, "--"}, args...)...)
}

// resolvConf is the laptop's /etc/resolv.conf as its processes see it.
func (l *laptop) resolvConf(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/etc/netns", l.name, "resolv.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hasDevice reports whether the laptop has a network device name.
func (l *laptop) hasDevice(ctx context.Context, name string) bool {
	_, err := l.run(ctx, "ip", "link", "show", name)
	return err == nil
}

// rootProcesses lists the processes in the laptop's network namespace that
// run as root (none of a session's may, once connect has returned).
func (l *laptop) rootProcesses(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", l.name).Output()
	if err != nil {
		t.Fatal(err)
	}
	var root []string
	for _, pid := range strings.Fields(string(out)) {
		status, err := os.ReadFile("/proc/" + pid + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] == "0" {
				cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
				root = append(root, pid+": "+strings.ReplaceAll(string(cmd), "\x00", " "))
			}
		}
	}
	return root
}

type statusJSON struct {
	Phase      string   `json:"phase"`
	Context    string   `json:"context"`
	Namespace  string   `json:"namespace"`
	ManagerPod string   `json:"managerPod"`
	Device     string   `json:"device"`
	Routes     []string `json:"routes"`
	DNS        struct {
		Mode       string `json:"mode"`
		Nameserver string `json:"nameserver"`
	} `json:"dns"`
	LogFile string `json:"logFile"`
	PID     int    `json:"pid"`
}

func (l *laptop) status(t *testing.T, ctx context.Context, u *teleUser) statusJSON {
	t.Helper()
	out, err := l.tele(ctx, u, "status", "-o", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return st
}

// eventually retries f for up to d.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		// Sleep: the poll interval of eventually, the helper for conditions
		// outside the test's process that give no event.
		time.Sleep(250 * time.Millisecond)
	}
}

// dumpLogs prints a user's daemon and helper logs when a test failed.
func dumpLogs(t *testing.T, u *teleUser) {
	t.Cleanup(func() {
		if !t.Failed() && !keepLogs {
			return
		}
		for _, f := range []string{"daemon.log", "helper.log"} {
			b, _ := os.ReadFile(filepath.Join(u.home, ".cache", "kubectl-tele", f))
			saveLog(t, u.name+"_"+strings.TrimSuffix(f, ".log"), b)
		}
	})
}

// developer is one developer of a test: a laptop and a Unix user of their
// own, as on a machine of their own.
type developer struct {
	l *laptop
	u *teleUser
}

// connectDevelopers makes a developer for each laptop number, connects
// each to ns, and has each quit when the test ends (their logs saved if it
// failed).
func connectDevelopers(ctx context.Context, t *testing.T, ns string, numbers ...int) []developer {
	t.Helper()
	var ds []developer
	for _, n := range numbers {
		d := developer{newLaptop(t, n), newTeleUser(t, n, nil)}
		dumpLogs(t, d.u)
		t.Cleanup(func() { d.l.tele(context.Background(), d.u, "quit") })
		if out, err := d.l.tele(ctx, d.u, "connect", "-n", ns); err != nil {
			t.Fatalf("connect %s: %v\n%s", d.l.name, err, out)
		}
		ds = append(ds, d)
	}
	return ds
}
