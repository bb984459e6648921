//go:build linux && root

package redirect

// Real tests: they run as root against the kernel's nftables, each in a pair
// of network namespaces of its own, created with `ip netns add` and deleted in
// cleanup. The host's namespace is never changed.
//
//	"pod" ns: lo, vpod 10.200.0.1/24 fd00:200::1/64, app on :8080, agent on :9090
//	"out" ns: lo, vout 10.200.0.2/24 fd00:200::2/64, the clients from outside
//
// Packets from the out namespace arrive on vpod and cross PREROUTING, as
// traffic from other pods does.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

const (
	appPort   = 8080
	agentPort = 9090
)

var (
	podV4 = netip.MustParseAddr("10.200.0.1")
	podV6 = netip.MustParseAddr("fd00:200::1")
)

var nsSeq atomic.Int32

// testNet is the pod and outside namespaces of one test.
type testNet struct {
	pod, out string // names under /var/run/netns
}

func (n *testNet) podPath() string { return filepath.Join("/var/run/netns", n.pod) }

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the root tag's tests need root to create network namespaces and nftables tables: run them with make unit-root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip command")
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newTestNet creates the two namespaces joined by a veth pair.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	requireRoot(t)
	id := fmt.Sprintf("ktr-%d-%d", os.Getpid(), nsSeq.Add(1))
	n := &testNet{pod: id + "-pod", out: id + "-out"}
	for _, ns := range []string{n.pod, n.out} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	// Created inside the pod namespace, with its peer moved straight to out,
	// so no interface ever exists in the host namespace.
	run(t, "ip", "-n", n.pod, "link", "add", "vpod", "type", "veth", "peer", "name", "vout", "netns", n.out)
	run(t, "ip", "-n", n.pod, "addr", "add", "10.200.0.1/24", "dev", "vpod")
	run(t, "ip", "-n", n.pod, "addr", "add", "fd00:200::1/64", "dev", "vpod", "nodad")
	run(t, "ip", "-n", n.out, "addr", "add", "10.200.0.2/24", "dev", "vout")
	run(t, "ip", "-n", n.out, "addr", "add", "fd00:200::2/64", "dev", "vout", "nodad")
	run(t, "ip", "-n", n.pod, "link", "set", "vpod", "up")
	run(t, "ip", "-n", n.out, "link", "set", "vout", "up")
	return n
}

// inNS runs f on an OS thread switched into the named namespace. Sockets keep
// the namespace they were created in, so what f opens can be used anywhere.
func inNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread stays in the other namespace, so the
		// runtime must throw it away when this goroutine returns.
		fd, err := unix.Open(filepath.Join("/var/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// serve starts a line server in the pod namespace on port: it answers every
// line with its name, so a client can ask who is behind a connection, as often
// as it likes. The server and its connections stop at test cleanup.
func serve(t *testing.T, n *testNet, port int, name string) {
	t.Helper()
	var l net.Listener
	err := inNS(n.pod, func() (err error) {
		l, err = net.Listen("tcp", ":"+strconv.Itoa(port)) // all addresses, v4 and v6
		return err
	})
	if err != nil {
		t.Fatalf("%s listen on :%d: %v", name, port, err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := io.WriteString(c, name+"\n"); err != nil {
						return
					}
				}
			})
		}
	})
}

// dial connects from inside namespace ns.
func dial(ns string, addr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := inNS(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr.String(), 3*time.Second)
		return err
	})
	return c, err
}

// ask returns the name of the server behind c.
func ask(c net.Conn) (string, error) {
	if err := c.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, "who?\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// whoAnswers opens a new connection from ns to addr and returns which server
// answered it.
func whoAnswers(t *testing.T, ns string, addr netip.AddrPort) string {
	t.Helper()
	c, err := dial(ns, addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, ns, err)
	}
	defer c.Close()
	who, err := ask(c)
	if err != nil {
		t.Fatalf("ask %s from %s: %v", addr, ns, err)
	}
	return who
}

// check asserts who answers new connections, from outside and from inside
// the pod, over IPv4 and IPv6.
func check(t *testing.T, n *testNet, fromOutside, fromInside string) {
	t.Helper()
	for _, c := range []struct {
		ns   string
		addr netip.AddrPort
		want string
	}{
		{n.out, netip.AddrPortFrom(podV4, appPort), fromOutside},
		{n.out, netip.AddrPortFrom(podV6, appPort), fromOutside},
		{n.pod, netip.MustParseAddrPort("127.0.0.1:8080"), fromInside},
		{n.pod, netip.MustParseAddrPort("[::1]:8080"), fromInside},
		{n.pod, netip.AddrPortFrom(podV4, appPort), fromInside},
	} {
		if got := whoAnswers(t, c.ns, c.addr); got != c.want {
			t.Errorf("new connection from %s to %s answered by %q, want %q", c.ns, c.addr, got, c.want)
		}
	}
}

// podTables lists the inet tables of the pod namespace through a fresh,
// short-lived netlink connection.
func podTables(t *testing.T, n *testNet) map[string]*nftables.Table {
	t.Helper()
	f, err := os.Open(n.podPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list tables in %s: %v", n.pod, err)
	}
	m := make(map[string]*nftables.Table)
	for _, tb := range ts {
		m[tb.Name] = tb
	}
	return m
}

// watchTableDeleted returns a channel closed when the pod namespace's inet
// table name is deleted, as nftables' monitor reports it.
func watchTableDeleted(t *testing.T, n *testNet, name string) <-chan struct{} {
	t.Helper()
	f, err := os.Open(n.podPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	mon := nftables.NewMonitor(nftables.WithMonitorAction(nftables.MonitorActionDel), nftables.WithMonitorObject(nftables.MonitorObjectTables))
	events, err := c.AddMonitor(mon)
	if err != nil {
		t.Fatalf("monitor tables in %s: %v", n.pod, err)
	}
	t.Cleanup(func() { mon.Close() })
	deleted := make(chan struct{})
	go func() {
		for ev := range events {
			if tb, ok := ev.Data.(*nftables.Table); ok && ev.Type == nftables.MonitorEventTypeDelTable && tb.Name == name && tb.Family == nftables.TableFamilyINet {
				close(deleted)
				return
			}
		}
	}()
	return deleted
}

func nftRuleset(t *testing.T, n *testNet) string {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		return "(nft not installed)"
	}
	return run(t, "ip", "netns", "exec", n.pod, "nft", "list", "ruleset")
}

func openIn(t *testing.T, n *testNet) *Redirector {
	t.Helper()
	r, err := Open(t.Context(), Options{NetNSPath: n.podPath()})
	if err != nil {
		t.Fatalf("Open in %s: %v", n.pod, err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func TestRedirectOnlyOutsideTraffic(t *testing.T) {
	n := newTestNet(t)
	serve(t, n, appPort, "app")
	serve(t, n, agentPort, "agent")

	check(t, n, "app", "app")

	r := openIn(t, n)
	if tb := podTables(t, n)[DefaultTableName]; tb == nil || !owned(tb) {
		t.Fatalf("table %s after Open: %+v, want it with the owner flag", DefaultTableName, tb)
	}
	if err := r.Set([]Rule{{Port: appPort, ToPort: agentPort}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("ruleset:\n%s", nftRuleset(t, n))
	check(t, n, "agent", "app")

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if tb := podTables(t, n)[DefaultTableName]; tb != nil {
		t.Errorf("table %s still present after Close", DefaultTableName)
	}
	check(t, n, "app", "app")
}

func TestSetKeepsOpenConnectionsOnTheirPath(t *testing.T) {
	n := newTestNet(t)
	serve(t, n, appPort, "app")
	serve(t, n, agentPort, "agent")
	r := openIn(t, n)

	// Each step changes the rules, then checks that connections opened
	// before every change still reach the server they started with.
	type open struct {
		c    net.Conn
		want string
	}
	var opened []open
	// Opened before the namespace had any NAT rule, so before conntrack
	// tracked anything: the first rule must not catch them mid-stream.
	for _, addr := range []netip.AddrPort{netip.AddrPortFrom(podV4, appPort), netip.AddrPortFrom(podV6, appPort)} {
		c, err := dial(n.out, addr)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		t.Cleanup(func() { c.Close() })
		if got, err := ask(c); err != nil || got != "app" {
			t.Fatalf("before any rule: %s answered by %q (err %v)", addr, got, err)
		}
		opened = append(opened, open{c, "app"})
	}
	steps := []struct {
		name  string
		rules []Rule
		want  string // who answers new outside connections
	}{
		{"intercept", []Rule{{Port: appPort, ToPort: agentPort}}, "agent"},
		{"release", nil, "app"},
		{"intercept again", []Rule{{Port: appPort, ToPort: agentPort}}, "agent"},
		{"other port only", []Rule{{Port: 8081, ToPort: agentPort}}, "app"},
	}
	for _, s := range steps {
		if err := r.Set(s.rules); err != nil {
			t.Fatalf("%s: Set(%v): %v", s.name, s.rules, err)
		}
		if got := r.Rules(); len(got) != len(s.rules) {
			t.Errorf("%s: Rules() = %v, want %v", s.name, got, s.rules)
		}
		for i, o := range opened {
			if got, err := ask(o.c); err != nil || got != o.want {
				t.Errorf("%s: connection %d opened earlier answered by %q (err %v), want %q", s.name, i, got, err, o.want)
			}
		}
		for _, addr := range []netip.AddrPort{netip.AddrPortFrom(podV4, appPort), netip.AddrPortFrom(podV6, appPort)} {
			c, err := dial(n.out, addr)
			if err != nil {
				t.Fatalf("%s: dial %s: %v", s.name, addr, err)
			}
			t.Cleanup(func() { c.Close() })
			got, err := ask(c)
			if err != nil || got != s.want {
				t.Errorf("%s: new connection to %s answered by %q (err %v), want %q", s.name, addr, got, err, s.want)
			}
			opened = append(opened, open{c, s.want})
		}
	}
}

// TestOpenLeavesAnotherTable: a table of our name that Open did not make
// (every agent's is owned, so this one is someone else's) is neither
// adopted nor deleted: Open fails with ErrOwnedByAnother, and the table
// and its rules stay.
func TestOpenLeavesAnotherTable(t *testing.T) {
	n := newTestNet(t)
	f, err := os.Open(n.podPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	other := c.AddTable(&nftables.Table{Name: DefaultTableName, Family: nftables.TableFamilyINet})
	ch := c.AddChain(&nftables.Chain{Name: "theirs", Table: other, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	c.AddRule(&nftables.Rule{Table: other, Chain: ch, Exprs: ruleExprs(Rule{Port: appPort, ToPort: 1})})
	if err := c.Flush(); err != nil {
		t.Fatalf("create another table: %v", err)
	}
	if r, err := Open(t.Context(), Options{NetNSPath: n.podPath()}); !errors.Is(err, ErrOwnedByAnother) {
		if r != nil {
			r.Close()
		}
		t.Fatalf("Open over another table: %v, want ErrOwnedByAnother", err)
	}
	if tb := podTables(t, n)[DefaultTableName]; tb == nil || owned(tb) {
		t.Errorf("table after Open: %+v, want theirs, unowned", tb)
	}
	if rs := nftRuleset(t, n); !strings.Contains(rs, "chain theirs") {
		t.Errorf("their chain is gone after Open:\n%s", rs)
	}
}

// The child side of the process tests: run by re-executing the test binary.
const childEnv = "KT_REDIRECT_TEST_CHILD"

func TestChildProcess(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("helper run only as a child process")
	}
	r, err := Open(context.Background(), Options{}) // the namespace we were started in
	if err != nil {
		fmt.Printf("open error: %v (permission=%v)\n", err, errors.Is(err, os.ErrPermission))
		os.Exit(3)
	}
	if err := r.Set([]Rule{{Port: appPort, ToPort: agentPort}}); err != nil {
		fmt.Printf("set error: %v\n", err)
		os.Exit(4)
	}
	fmt.Println("ready")
	// Hold the redirect until killed, as an agent does.
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// startChild runs TestChildProcess inside the pod namespace, with extra
// wrapper commands before it (e.g. setpriv).
func startChild(t *testing.T, n *testNet, wrap ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	args := append([]string{"netns", "exec", n.pod}, wrap...)
	args = append(args, os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1")
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // held open: the child exits on EOF
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewReader(stdout)
}

func TestFailOpenWhenAgentIsKilled(t *testing.T) {
	n := newTestNet(t)
	serve(t, n, appPort, "app")
	serve(t, n, agentPort, "agent")

	cmd, out := startChild(t, n)
	line, err := out.ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("child agent: %q, %v", line, err)
	}
	check(t, n, "agent", "app")

	// A second agent in the same pod must not take over a live one's table.
	if r, err := Open(t.Context(), Options{NetNSPath: n.podPath()}); !errors.Is(err, ErrOwnedByAnother) {
		if r != nil {
			r.Close()
		}
		t.Errorf("Open while another agent holds the table: %v, want ErrOwnedByAnother", err)
	} else {
		t.Logf("second Open: %v", err)
	}
	check(t, n, "agent", "app") // the refused Open left the live agent's rules alone

	// kill -9: no deferred cleanup, no Close. The kernel deletes the table
	// when its owner's socket closes: watch for that event.
	deleted := watchTableDeleted(t, n, DefaultTableName)
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd.Wait()
	if podTables(t, n)[DefaultTableName] != nil {
		select {
		case <-deleted:
		case <-time.After(5 * time.Second):
			t.Fatalf("table still present 5s after the agent was killed:\n%s", nftRuleset(t, n))
		}
	}
	t.Logf("table gone %v after SIGKILL; ruleset now: %q", time.Since(start), nftRuleset(t, n))
	check(t, n, "app", "app")

	// The next agent starts clean.
	r := openIn(t, n)
	if err := r.Set([]Rule{{Port: appPort, ToPort: agentPort}}); err != nil {
		t.Fatal(err)
	}
	check(t, n, "agent", "app")
}

func TestOpenWithoutNetAdmin(t *testing.T) {
	n := newTestNet(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv to drop CAP_NET_ADMIN")
	}
	// Dropping it from the bounding set removes it from the exec'd test
	// binary's capabilities even though it runs as root.
	cmd, out := startChild(t, n, "setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin", "--")
	got, _ := io.ReadAll(out)
	cmd.Wait()
	t.Logf("child without NET_ADMIN: %s", bytes.TrimSpace(got))
	for _, want := range []string{"open error", "NET_ADMIN", "no-capability", "permission=true"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("child output %q does not contain %q", got, want)
		}
	}
	if tb := podTables(t, n)[DefaultTableName]; tb != nil {
		t.Errorf("table %s created without NET_ADMIN", DefaultTableName)
	}
}

// TestRedirectedConnectionsNeedTheTable: a connection the redirect sent to
// the agent keeps its translation only while the table's NAT chain, and
// conntrack in the namespace, exist. Set(nil) keeps both (the chain, and
// keepConntrack's rule), so the agent's answers (and its FIN when it
// closes) still reach the client from the port the client dialled, also
// once the kernel has freed the removed rules; after Close the kernel no
// longer translates them, and a client still holding such a connection
// hears nothing (it hangs until its own timeout). So an agent that stops
// takes new connections off first (Set(nil)), closes the ones it holds,
// and only then deletes the table (see agent.Run).
func TestRedirectedConnectionsNeedTheTable(t *testing.T) {
	n := newTestNet(t)
	serve(t, n, appPort, "app")
	serve(t, n, agentPort, "agent")
	r, err := Open(t.Context(), Options{NetNSPath: n.podPath()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Set([]Rule{{Port: appPort, ToPort: agentPort}}); err != nil {
		t.Fatal(err)
	}
	c, err := dial(n.out, netip.AddrPortFrom(podV4, appPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := ask(c); err != nil || got != "agent" {
		t.Fatalf("redirected connection answered by %q (err %v), want the agent", got, err)
	}
	if err := r.Set(nil); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(c); err != nil || got != "agent" {
		t.Errorf("after Set(nil): answered by %q (err %v), want the agent still", got, err)
	}
	// sleepcheck:allow the kernel frees the rules Set removed in deferred
	// work, which gives no event; with the last of them went conntrack,
	// until keepConntrack (seen: the connection reset 2.5 s after Set(nil)).
	time.Sleep(2500 * time.Millisecond)
	if got, err := ask(c); err != nil || got != "agent" {
		t.Errorf("2.5 s after Set(nil): answered by %q (err %v), want the agent still", got, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(c); err == nil {
		// Not an error of ours: a kernel that keeps translating without a
		// NAT chain makes the order in agent.Run merely careful.
		t.Logf("after Close: still answered by %q (this kernel keeps the translation)", got)
	} else {
		t.Logf("after Close: %v (the agent's answer is no longer translated)", err)
	}
}

// owned reports whether a listed table has NFT_TABLE_F_OWNER. google/nftables
// v0.3.0 decodes NFTA_TABLE_FLAGS in host byte order although the kernel sends
// it big-endian, so on little-endian hosts the flag shows up byte-swapped;
// accepting both spellings keeps this right if the library is fixed. No other
// flag value collides: the kernel defines only bits 0-2.
func owned(t *nftables.Table) bool {
	return t.Flags&(tableFlagOwner|tableFlagOwner<<24) != 0
}
