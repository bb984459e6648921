//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBench measures kubectl-tele against its baselines, all in one run so
// the ratios hold on a noisy machine: raw kubectl port-forward from the same
// laptop, and the pod reached straight from the host (the machine's limit).
// It writes bench/results.json and bench/results.md. `make bench` runs it;
// it is skipped unless TELE_BENCH=1, so `make test` does not.
//
// Laptops 20 and 21, users 20 and 21, namespaces bench-*: other e2e runs use
// 1..9 on the same machine at the same time.
func TestBench(t *testing.T) {
	if os.Getenv("TELE_BENCH") == "" {
		t.Skip("set TELE_BENCH=1 (make bench) to run the benchmarks")
	}
	rep := newBenchReport()
	// Written last, after every other cleanup, and also when a part failed.
	t.Cleanup(func() {
		md, err := rep.write()
		if err != nil {
			t.Error(err)
		}
		fmt.Printf("\n%s\nwrote %s\n", md, filepath.Join(repoRoot, "bench", "results.json"))
	})
	c := newCluster(t)
	ctx := ctxFor(t, 15*time.Minute)
	ns := c.namespace(t, "bench", nil)
	c.deployEcho(t, ns, "echo", 1)
	pod := c.podsOf(t, ns, "echo")[0]
	podIP := pod.Status.PodIP
	tools := benchTools(t)

	// The 20 ms network: laptop 21 reaches the API server only through it.
	proxy := startDelayProxy(t, []string{"10.201.0.1:16443", "10.201.0.1:16444", "10.201.0.1:16445"}, "10.201.0.1:6443", 10*time.Millisecond)
	kc, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	slowKC := []byte(strings.ReplaceAll(string(kc), "10.201.0.1:6443", proxy.addr()))
	if string(slowKC) == string(kc) {
		t.Fatalf("kubeconfig %s does not name 10.201.0.1:6443", kubeconfig)
	}

	l, u := newLaptop(t, 20), newTeleUser(t, 20, nil)
	ls, us := newLaptop(t, 21), newTeleUser(t, 21, slowKC)
	dumpLogs(t, u)
	dumpLogs(t, us)
	t.Cleanup(func() {
		l.tele(context.Background(), u, "quit")
		ls.tele(context.Background(), us, "quit")
	})
	if v, err := l.tele(ctx, u, "version"); err == nil {
		rep.Version = strings.Join(strings.Fields(v), " ")
	}

	svcURL := "http://echo." + ns + ":8080"
	podURL := "http://" + podIP + ":8080"
	const pfPort, pfPortSlow = 18080, 18081
	pfURL := fmt.Sprintf("http://127.0.0.1:%d", pfPort)
	pfURLSlow := fmt.Sprintf("http://127.0.0.1:%d", pfPortSlow)

	// section runs one part; a failed part is reported, the others still run.
	section := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			rep.Failed = append(rep.Failed, name)
		}
	}

	section("connect", func(t *testing.T) {
		cold := timeConnect(t, ctx, l, u, ns, svcURL+"/")
		if out, err := l.tele(ctx, u, "quit"); err != nil {
			t.Fatalf("quit: %v\n%s", err, out)
		}
		warm := timeConnect(t, ctx, l, u, ns, svcURL+"/")
		// Sleep: lets the fresh daemon settle before its RSS is read: no event
		// says a process is done allocating.
		time.Sleep(time.Second)
		pid := l.status(t, ctx, u).PID
		rep.add("daemon RSS, just connected", "MiB", mib(readRSS(pid)), nil, "< 50 MiB", func(v float64, _ []float64) bool { return v < 50 }, rssSplit(pid))
		if !strings.Contains(cold.Output, "starting the traffic manager") || strings.Contains(warm.Output, "starting the traffic manager") {
			t.Errorf("want the first connect to start the manager and the second to find it:\n%s\n---\n%s", cold.Output, warm.Output)
		}
		rep.raw("connect", map[string]any{"cold": cold, "warm": warm})
		rep.add("connect, cold (no manager, image present): start to first request by name", "s", cold.FirstRequest, nil, "< 5 s",
			func(v float64, _ []float64) bool { return v < 5 }, fmt.Sprintf("command returned after %s s", num(cold.Command)))
		rep.add("connect, warm (manager running)", "s", warm.FirstRequest, nil, "< 1 s",
			func(v float64, _ []float64) bool { return v < 1 }, fmt.Sprintf("command returned after %s s", num(warm.Command)))
	})
	if t.Failed() {
		t.Fatal("not connected; nothing else can be measured")
	}
	if out, err := l.run(ctx, "ip", "-d", "link", "show", "tele0"); err == nil {
		rep.raw("tele0", strings.TrimSpace(out))
	}
	stopPF := portForward(t, ctx, l, u, tools, ns, pod.Name, pfPort)
	defer stopPF()

	section("bulk throughput, loopback", func(t *testing.T) {
		const size = 200 << 20
		paths := []benchPath{
			{"tunnel", func(ctx context.Context) (string, error) { return l.as(ctx, u, bulkCurl(svcURL, size, 60)...) }},
			{"port-forward", func(ctx context.Context) (string, error) { return l.as(ctx, u, bulkCurl(pfURL, size, 60)...) }},
			{"direct", func(ctx context.Context) (string, error) { return hostRun(ctx, bulkCurl(podURL, size, 60)...) }},
		}
		// Where the CPU goes: on 2 shared cores, bulk throughput is bound by
		// the CPU each byte costs on its way.
		shared := cpuSet{
			"kube-apiserver": pgrep("-x", "kube-apiserver"),
			"kubelet":        pgrep("-x", "kubelet"),
			"containerd":     pgrep("-f", "^containerd --config "+kindDir),
			"echo server":    {podProcess(t, c, ns, "app=echo", "/echo serve")},
		}
		cpu := map[string]cpuSet{
			"tunnel": shared.with(cpuSet{"daemon": {l.status(t, ctx, u).PID},
				"manager": {podProcess(t, c, ns, "batch.kubernetes.io/job-name="+managerJob, "kubectl-tele manager")}}),
			"port-forward": shared.with(cpuSet{"kubectl port-forward": pgrep("-f", fmt.Sprintf("port-forward pod/%s %d:8080", pod.Name, pfPort))}),
			"direct":       cpuSet{"echo server": shared["echo server"]},
		}
		mbs, used := bulkRoundsCPU(t, ctx, paths, 3, cpu)
		rep.raw("bulk_loopback_MBps", mbs)
		rep.raw("bulk_loopback_cpu_s_per_GB", used)
		a, b, d := median(mbs["tunnel"]), median(mbs["port-forward"]), median(mbs["direct"])
		rep.add("bulk TCP, 1 flow, 200 MiB, median of 3", "MB/s", a, []benchBaseline{{"port-forward", b}, {"direct", d}},
			">= 0.9× port-forward", func(_ float64, r []float64) bool { return r[0] >= 0.9 }, "")
		rep.add("CPU per GB moved, bulk TCP", "CPU s/GB", used["tunnel"]["total"],
			[]benchBaseline{{"port-forward", used["port-forward"]["total"]}, {"direct", used["direct"]["total"]}}, "", nil,
			"tunnel: "+cpuNote(used["tunnel"])+"; port-forward: "+cpuNote(used["port-forward"]))
	})

	section("latency, loopback", func(t *testing.T) {
		lat := latencyRows(t, ctx, rep, "", []latPath{
			{"tunnel", laptopBench(l, u, tools, svcURL)},
			{"port-forward", laptopBench(l, u, tools, pfURL)},
			{"direct", hostBench(tools, podURL)},
		}, 300, 50)
		rep.raw("latency_loopback", lat)
	})

	section("DNS", func(t *testing.T) {
		dnsIP := coreDNSPodIP(t, c)
		name := "echo." + ns + ".svc.cluster.local."
		type run struct {
			key    string
			args   []string
			laptop bool
		}
		res := map[string]benchResult{}
		for _, r := range []run{
			{"tunnel cold", []string{"dns", "-unique", "-name", ns + ".svc.cluster.local.", "-n", "300"}, true},
			{"direct cold", []string{"dns", "-unique", "-name", ns + ".svc.cluster.local.", "-n", "300", "-server", dnsIP + ":53"}, false},
			{"tunnel cached", []string{"dns", "-name", name, "-n", "500"}, true},
			{"direct cached", []string{"dns", "-name", name, "-n", "500", "-server", dnsIP + ":53"}, false},
		} {
			var out string
			var err error
			if r.laptop {
				out, err = l.as(ctx, u, append([]string{tools.echo}, r.args...)...)
			} else {
				out, err = hostRun(ctx, append([]string{tools.echo}, r.args...)...)
			}
			res[r.key] = parseBench(t, r.key, out, err)
		}
		rep.raw("dns", res)
		for _, kind := range []string{"cold", "cached"} {
			a, d := res["tunnel "+kind], res["direct "+kind]
			what := map[string]string{"cold": "a fresh name each time (NXDOMAIN), 300 lookups", "cached": "the same Service name, 500 lookups"}[kind]
			rep.add("DNS "+kind+" p50: "+what, "ms", a.P50, []benchBaseline{{"CoreDNS from host", d.P50}}, "", nil, errNote(a))
			rep.add("DNS "+kind+" p99", "ms", a.P99, []benchBaseline{{"CoreDNS from host", d.P99}}, "", nil, "")
		}
	})

	section("scale and memory", func(t *testing.T) {
		st := l.status(t, ctx, u)
		mgr := podProcess(t, c, ns, "batch.kubernetes.io/job-name="+managerJob, "kubectl-tele manager")
		// At rest: the DNS tests' UDP flows end after 10 s idle, and the
		// daemon returns free heap 5 s after its last flow.
		time.Sleep(16 * time.Second)
		daemonIdle, mgrIdle := readRSS(st.PID), readRSS(mgr)
		daemonSplit, mgrSplit := rssSplit(st.PID), rssSplit(mgr)
		daemonPeak, mgrPeak := sampleRSS(st.PID), sampleRSS(mgr)
		start := time.Now()
		out, err := l.as(ctx, u, tools.echo, "bench", "-url", svcURL+"/", "-c", "1000", "-n", "3", "-timeout", "60s")
		took := time.Since(start)
		dp, mp := daemonPeak(), mgrPeak()
		r := parseBench(t, "1000 flows", out, err)
		rep.raw("scale", map[string]any{"result": r, "seconds": took.Seconds(), "daemon_rss_idle_kib": daemonIdle,
			"daemon_rss_peak_kib": dp, "manager_rss_idle_kib": mgrIdle, "manager_rss_peak_kib": mp, "daemon": readStatus(st.PID)})
		rep.add("1,000 concurrent TCP flows through one daemon (3 requests each): failed", "flows", float64(r.Errors), nil, "0 failing",
			func(v float64, _ []float64) bool { return v == 0 && r.MaxOpen >= 1000 && r.N == 3000 },
			fmt.Sprintf("%d requests ok, %d open at once, %s s", r.N, r.MaxOpen, num(took.Seconds())))
		rep.add("daemon RSS, at rest 16 s after the throughput and DNS tests", "MiB", mib(daemonIdle), nil, "< 50 MiB", func(v float64, _ []float64) bool { return v < 50 }, daemonSplit)
		rep.add("daemon RSS, peak during 1,000 flows", "MiB", mib(dp), nil, "< 50 MiB", func(v float64, _ []float64) bool { return v < 50 }, "")
		rep.add("manager RSS, idle", "MiB", mib(mgrIdle), nil, "", nil, mgrSplit)
		rep.add("manager RSS, peak during 1,000 flows", "MiB", mib(mp), nil, "", nil, "")
	})

	section("20 ms RTT", func(t *testing.T) {
		conn := timeConnect(t, ctx, ls, us, ns, svcURL+"/")
		rep.raw("connect_20ms", conn)
		rep.add("20 ms RTT: connect, warm", "s", conn.FirstRequest, nil, "", nil, fmt.Sprintf("command returned after %s s", num(conn.Command)))
		stop := portForward(t, ctx, ls, us, tools, ns, pod.Name, pfPortSlow)
		defer stop()
		const size, limit = 100 << 20, 15
		one := bulkRounds(t, ctx, []benchPath{
			{"tunnel", func(ctx context.Context) (string, error) { return ls.as(ctx, us, bulkCurl(svcURL, size, limit)...) }},
			{"port-forward", func(ctx context.Context) (string, error) { return ls.as(ctx, us, bulkCurl(pfURLSlow, size, limit)...) }},
		}, 3)
		par := bulkRounds(t, ctx, []benchPath{
			{"tunnel", func(ctx context.Context) (string, error) {
				return ls.as(ctx, us, parallelCurl(svcURL, 8, size/8, limit)...)
			}},
			{"port-forward", func(ctx context.Context) (string, error) {
				return ls.as(ctx, us, parallelCurl(pfURLSlow, 8, size/8, limit)...)
			}},
		}, 1)
		rep.raw("bulk_20ms_MBps", map[string]any{"one_flow": one, "eight_flows": par})
		mbit := func(v float64) float64 { return v * 8 }
		rep.add("20 ms RTT: bulk TCP, 1 flow, 100 MiB (15 s cap), median of 3", "Mbit/s", mbit(median(one["tunnel"])),
			[]benchBaseline{{"port-forward", mbit(median(one["port-forward"]))}}, ">= 100 Mbit/s",
			func(v float64, _ []float64) bool { return v >= 100 }, "")
		rep.add("20 ms RTT: bulk TCP, 8 parallel flows together", "Mbit/s", mbit(median(par["tunnel"])),
			[]benchBaseline{{"port-forward", mbit(median(par["port-forward"]))}}, ">= 100 Mbit/s",
			func(v float64, _ []float64) bool { return v >= 100 }, "")
		lat := latencyRows(t, ctx, rep, "20 ms RTT: ", []latPath{
			{"tunnel", laptopBench(ls, us, tools, svcURL)},
			{"port-forward", laptopBench(ls, us, tools, pfURLSlow)},
		}, 200, 30)
		rep.raw("latency_20ms", lat)
		if out, err := ls.tele(ctx, us, "quit"); err != nil {
			t.Errorf("quit: %v\n%s", err, out)
		}
	})

	section("intercept", func(t *testing.T) {
		l.localServer(t, u, 7070, "LAPTOP")
		url := podURL + "/"
		appPID := podProcess(t, c, ns, "app=echo", "/echo serve")
		podMemBefore := podMemoryKiB(appPID)
		// An in-cluster client: requests to the pod's own address, as another
		// pod's would arrive (the host reaches pods over the same bridge).
		start := time.Now()
		seen := probe(ctx, url, "x-bench", func(who string) bool { return who == "LAPTOP" }, time.Minute)
		out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--port", "7070:8080", "--http-match", "x-bench=1")
		cmd := time.Since(start)
		if err != nil {
			t.Fatalf("intercept: %v\n%s", err, out)
		}
		p := <-seen
		if p.err != nil {
			t.Fatalf("intercept never served a request on the laptop: %v", p.err)
		}
		icept, iceptFailed := p.at.Sub(start), p

		agent := podProcess(t, c, ns, "app=echo", "kubectl-tele agent")
		// Sleep: lets the agent settle after its first request before its RSS
		// is read: no event says a process is done allocating.
		time.Sleep(time.Second)
		agentIdle, agentSplit := readRSS(agent), rssSplit(agent)
		if before, after := podMemBefore, podMemoryKiB(appPID); before > 0 && after > 0 {
			agentSplit += fmt.Sprintf("; the pod's memory cgroup grew %s MiB when it joined (%s to %s MiB)", num(mib(after-before)), num(mib(before)), num(mib(after)))
		}
		agentPeak := sampleRSS(agent)
		var wg sync.WaitGroup
		var toApp, toLaptop benchResult
		wg.Add(2)
		go func() {
			defer wg.Done()
			out, err := hostRun(ctx, tools.echo, "bench", "-url", url+"bytes?n=1024", "-c", "32", "-n", "100")
			toApp = parseBench(t, "through the agent to the app", out, err)
		}()
		go func() {
			defer wg.Done()
			out, err := hostRun(ctx, tools.echo, "bench", "-url", url, "-H", "x-bench=1", "-c", "8", "-n", "50")
			toLaptop = parseBench(t, "through the agent to the laptop", out, err)
		}()
		wg.Wait()
		ap := agentPeak()

		start = time.Now()
		back := probe(ctx, url, "x-bench", func(who string) bool { return strings.HasPrefix(who, "echo-") }, time.Minute)
		if out, err := l.tele(ctx, u, "leave", "echo"); err != nil {
			t.Fatalf("leave: %v\n%s", err, out)
		}
		leaveCmd := time.Since(start)
		p = <-back
		if p.err != nil {
			t.Fatalf("the app never answered again after leave: %v", p.err)
		}
		leave := p.at.Sub(start)
		if p.failed > 0 {
			t.Logf("requests failed during leave: %d, first: %s", p.failed, p.firstErr)
		}
		rep.raw("intercept", map[string]any{"intercept_s": icept.Seconds(), "intercept_cmd_s": cmd.Seconds(),
			"intercept_failed_requests": iceptFailed.failed, "intercept_first_error": iceptFailed.firstErr, "leave_s": leave.Seconds(),
			"leave_cmd_s": leaveCmd.Seconds(), "leave_failed_requests": p.failed, "leave_first_error": p.firstErr,
			"agent_rss_idle_kib": agentIdle, "agent_rss_peak_kib": ap, "agent_status": readStatus(agent),
			"to_app": toApp, "to_laptop": toLaptop, "output": out})
		rep.add("intercept: start to first matching request served by the laptop", "s", icept.Seconds(), nil, "< 2 s",
			func(v float64, _ []float64) bool { return v < 2 }, fmt.Sprintf("command returned after %s s; %d probe requests failed meanwhile",
				num(cmd.Seconds()), iceptFailed.failed))
		rep.add("leave: start until the app answers again", "s", leave.Seconds(), nil, "", nil,
			fmt.Sprintf("command returned after %s s; %d probe requests failed meanwhile", num(leaveCmd.Seconds()), p.failed))
		rep.add("agent RSS, idle (intercept active)", "MiB", mib(agentIdle), nil, "< 20 MiB", func(v float64, _ []float64) bool { return v < 20 },
			agentSplit)
		rep.add("agent RSS, peak under load", "MiB", mib(ap), nil, "< 20 MiB", func(v float64, _ []float64) bool { return v < 20 },
			fmt.Sprintf("32 clients to the app + 8 to the laptop; %d errors", toApp.Errors+toLaptop.Errors))
		rep.add("1 KiB through the agent to the app, 32 concurrent, p50", "ms", toApp.P50, nil, "", nil, "")
		rep.add("intercepted request, pod to laptop and back, 8 concurrent, p50", "ms", toLaptop.P50, nil, "", nil, "")
	})

	// --mount against the same intercept without it, both warm (the agent
	// attached above), back to back: time to the first matching request
	// served by the laptop, and the intercepted request's latency. The
	// echo pod has the default projected volume (token, CA, namespace).
	section("intercept --mount", func(t *testing.T) {
		l.localServer(t, u, 7070, "LAPTOP")
		url := podURL + "/"
		dir := filepath.Join(u.home, "bench-mnt")
		warm := func(args ...string) (time.Duration, benchResult) {
			t.Helper()
			start := time.Now()
			seen := probe(ctx, url, "x-bench", func(who string) bool { return who == "LAPTOP" }, time.Minute)
			if out, err := l.tele(ctx, u, append([]string{"intercept", "deploy/echo", "--port", "7070:8080", "--http-match", "x-bench=1"}, args...)...); err != nil {
				t.Fatalf("intercept %v: %v\n%s", args, err, out)
			}
			p := <-seen
			if p.err != nil {
				t.Fatalf("intercept %v never served a request on the laptop: %v", args, p.err)
			}
			took := p.at.Sub(start)
			out, err := hostRun(ctx, tools.echo, "bench", "-url", url, "-H", "x-bench=1", "-c", "8", "-n", "50")
			lat := parseBench(t, "through the agent to the laptop", out, err)
			if out, err := l.tele(ctx, u, "leave", "echo"); err != nil {
				t.Fatalf("leave: %v\n%s", err, out)
			}
			return took, lat
		}
		plain, plainLat := warm()
		mounted, mountedLat := warm("--mount", dir)
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s after leave: %v, want it gone", dir, err)
		}
		rep.raw("intercept_mount", map[string]any{"warm_s": plain.Seconds(), "warm_mount_s": mounted.Seconds(),
			"to_laptop": plainLat, "to_laptop_mount": mountedLat})
		rep.add("intercept --mount, warm: start to first matching request served by the laptop", "s", mounted.Seconds(),
			[]benchBaseline{{"without --mount", plain.Seconds()}}, "<= 1 s more", func(v float64, _ []float64) bool { return v-plain.Seconds() <= 1 }, "")
		rep.add("intercepted request with --mount, 8 concurrent, p50", "ms", mountedLat.P50,
			[]benchBaseline{{"without --mount", plainLat.P50}}, "", nil, "")
	})

}

// benchToolsT are the programs the benchmarks run in laptops: the echo app
// with its bench and dns modes, and kubectl for the port-forward baseline,
// where every laptop user can run them.
type benchToolsT struct{ echo, kubectl string }

func benchTools(t *testing.T) benchToolsT {
	t.Helper()
	dir := "/tmp/tele-bench"
	os.MkdirAll(dir, 0o755)
	os.Chmod(dir, 0o755)
	tools := benchToolsT{echo: filepath.Join(dir, "echo"), kubectl: filepath.Join(dir, "kubectl")}
	cmd := exec.Command("go", "build", "-o", tools.echo, "./hack/kind/apps/echo")
	cmd.Dir, cmd.Env = repoRoot, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build echo: %v\n%s", err, out)
	}
	src := filepath.Join(kindDir, ".cache", "kubernetes-v1.37.2", "kubectl")
	if out, err := exec.Command("install", "-m", "0755", src, tools.kubectl).CombinedOutput(); err != nil {
		t.Fatalf("install kubectl: %v\n%s", err, out)
	}
	return tools
}

func hostRun(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

// benchPath is one way to the echo app: run does one measurement.
type benchPath struct {
	name string
	run  func(ctx context.Context) (string, error)
}

func bulkCurl(base string, n int, maxTime int) []string {
	return []string{"curl", "-sS", "-o", "/dev/null", "--max-time", strconv.Itoa(maxTime),
		"-w", `%{size_download} %{time_total}\n`, fmt.Sprintf("%s/bytes?n=%d", base, n)}
}

// parallelCurl runs k downloads at once; each prints its own line.
func parallelCurl(base string, k, n int, maxTime int) []string {
	one := strings.Join(bulkCurl(base, n, maxTime), " ")
	one = strings.Replace(one, `%{size_download} %{time_total}\n`, `'%{size_download} %{time_total}\n'`, 1)
	return []string{"sh", "-c", fmt.Sprintf("for i in $(seq %d); do %s & done; wait", k, one)}
}

// bulkRounds runs every path rounds times, interleaved, and returns MB/s
// (10^6 bytes) per path: total bytes over the slowest download's time. A
// download cut off by its time limit still counts what it moved.
func bulkRounds(t *testing.T, ctx context.Context, paths []benchPath, rounds int) map[string][]float64 {
	t.Helper()
	res, _ := bulkRoundsCPU(t, ctx, paths, rounds, nil)
	return res
}

// bulkRoundsCPU is bulkRounds that also returns, per path, the CPU seconds
// per GB moved that each of its processes in cpu used (and their "total").
func bulkRoundsCPU(t *testing.T, ctx context.Context, paths []benchPath, rounds int, cpu map[string]cpuSet) (map[string][]float64, map[string]map[string]float64) {
	t.Helper()
	res := map[string][]float64{}
	used := map[string]map[string]float64{}
	moved := map[string]float64{}
	for range rounds {
		for _, p := range paths {
			before := cpu[p.name].seconds()
			out, err := p.run(ctx)
			after := cpu[p.name].seconds()
			if used[p.name] == nil {
				used[p.name] = map[string]float64{}
			}
			for role, s := range after {
				used[p.name][role] += s - before[role]
			}
			var bytes, secs float64
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var b, s float64
				if _, perr := fmt.Sscanf(strings.TrimSpace(line), "%g %g", &b, &s); perr == nil {
					bytes += b
					secs = max(secs, s)
				}
			}
			if bytes == 0 || secs == 0 {
				t.Errorf("%s: no download: %v\n%s", p.name, err, out)
				continue
			}
			if err != nil {
				t.Logf("%s: %v (cut off; counting %.0f bytes)", p.name, err, bytes)
			}
			mbs := bytes / 1e6 / secs
			t.Logf("%s: %.1f MB/s (%.0f bytes in %.2f s)", p.name, mbs, bytes, secs)
			res[p.name] = append(res[p.name], mbs)
			moved[p.name] += bytes
		}
	}
	for name, roles := range used {
		total := 0.0
		for role, s := range roles {
			roles[role] = round3(s / (moved[name] / 1e9))
			total += s
		}
		if len(roles) > 0 {
			roles["total"] = round3(total / (moved[name] / 1e9))
		}
	}
	return res, used
}

// cpuSet names the processes a path's bytes pass through, by role.
type cpuSet map[string][]int

func (s cpuSet) with(o cpuSet) cpuSet {
	m := cpuSet{}
	for k, v := range s {
		m[k] = v
	}
	for k, v := range o {
		m[k] = v
	}
	return m
}

// seconds is the user+system CPU time each role has used so far.
func (s cpuSet) seconds() map[string]float64 {
	m := map[string]float64{}
	for role, pids := range s {
		for _, pid := range pids {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue
			}
			// The fields after the command name: state is the first, utime
			// and stime the 12th and 13th (in clock ticks of 1/100 s).
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
			if len(f) > 12 {
				ut, _ := strconv.ParseFloat(f[11], 64)
				st, _ := strconv.ParseFloat(f[12], 64)
				m[role] += (ut + st) / 100
			}
		}
	}
	return m
}

func cpuNote(roles map[string]float64) string {
	var parts []string
	for role, s := range roles {
		if role != "total" {
			parts = append(parts, fmt.Sprintf("%s %s", role, num(s)))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func pgrep(args ...string) []int {
	out, _ := exec.Command("pgrep", args...).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// benchResult is what `echo bench` and `echo dns` print.
type benchResult struct {
	N        int     `json:"n"`
	P50      float64 `json:"p50"`
	P99      float64 `json:"p99"`
	Max      float64 `json:"max"`
	RPS      float64 `json:"rps"`
	Errors   int64   `json:"errors"`
	MaxOpen  int64   `json:"max_open,omitempty"`
	FirstErr string  `json:"first_error,omitempty"`
}

func parseBench(t *testing.T, what, out string, err error) benchResult {
	t.Helper()
	var r benchResult
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &r); jerr != nil || err != nil {
		t.Errorf("%s: %v %v\n%s", what, err, jerr, out)
	}
	t.Logf("%s: %+v", what, r)
	return r
}

func errNote(r benchResult) string {
	if r.Errors == 0 {
		return ""
	}
	return fmt.Sprintf("%d errors: %s", r.Errors, r.FirstErr)
}

func laptopBench(l *laptop, u *teleUser, tools benchToolsT, base string) func(ctx context.Context, n, c int) (string, error) {
	return func(ctx context.Context, n, c int) (string, error) {
		return l.as(ctx, u, tools.echo, "bench", "-url", base+"/bytes?n=1024", "-n", strconv.Itoa(n), "-c", strconv.Itoa(c))
	}
}

func hostBench(tools benchToolsT, base string) func(ctx context.Context, n, c int) (string, error) {
	return func(ctx context.Context, n, c int) (string, error) {
		return hostRun(ctx, tools.echo, "bench", "-url", base+"/bytes?n=1024", "-n", strconv.Itoa(n), "-c", strconv.Itoa(c))
	}
}

// latPath is one way to the echo app for the latency client.
type latPath struct {
	name string
	run  func(ctx context.Context, n, c int) (string, error)
}

// latencyRows measures 1 KiB GETs on every path, sequential (seq requests on
// one connection) then 32 clients × per requests, and adds the rows; the
// first path is the tunnel, the second the baseline the target is against.
func latencyRows(t *testing.T, ctx context.Context, rep *benchReport, prefix string,
	paths []latPath, seq, per int) map[string]benchResult {
	t.Helper()
	res := map[string]benchResult{}
	for _, mode := range []struct {
		key  string
		n, c int
	}{{"sequential", seq, 1}, {"32 concurrent", per, 32}} {
		for _, p := range paths {
			out, err := p.run(ctx, mode.n, mode.c)
			res[p.name+" "+mode.key] = parseBench(t, p.name+" "+mode.key, out, err)
		}
		a := res[paths[0].name+" "+mode.key]
		var p50s, p99s []benchBaseline
		for _, p := range paths[1:] {
			r := res[p.name+" "+mode.key]
			p50s = append(p50s, benchBaseline{p.name, r.P50})
			p99s = append(p99s, benchBaseline{p.name, r.P99})
		}
		what := fmt.Sprintf("%slatency 1 KiB GET, %s (%d×%d) p50", prefix, mode.key, mode.c, mode.n)
		rep.add(what, "ms", a.P50, p50s, "<= 1.2× port-forward", func(_ float64, r []float64) bool { return r[0] <= 1.2 }, errNote(a))
		rep.add(prefix+"latency 1 KiB GET, "+mode.key+" p99", "ms", a.P99, p99s, "", nil, "")
		var rps []benchBaseline
		for _, p := range paths[1:] {
			rps = append(rps, benchBaseline{p.name, res[p.name+" "+mode.key].RPS})
		}
		rep.add(prefix+"requests/s, "+mode.key, "req/s", a.RPS, rps, "", nil, "")
	}
	return res
}

// connectTiming is how long connect took: the command, and from its start to
// the first request by name that succeeded.
type connectTiming struct {
	Command      float64 `json:"command_s"`
	FirstRequest float64 `json:"first_request_s"`
	Tries        int     `json:"tries"`
	Output       string  `json:"output"`
}

// timeConnect runs connect and, at the same time, curl in a tight loop (a new
// process each try, as a user would, so each sees the resolver as it is).
func timeConnect(t *testing.T, ctx context.Context, l *laptop, u *teleUser, ns, url string) connectTiming {
	t.Helper()
	type result struct {
		out string
		err error
		d   time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		out, err := l.tele(ctx, u, "connect", "-n", ns)
		done <- result{out, err, time.Since(start)}
	}()
	var r *result
	tries := 0
	for {
		tries++
		out, err := l.run(ctx, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1", url)
		if err == nil && out == "200" {
			break
		}
		select {
		case x := <-done:
			r = &x
			if x.err != nil {
				t.Fatalf("connect: %v\n%s", x.err, x.out)
			}
		default:
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("no request by name succeeded 2 minutes after connect started")
		}
		// Sleep: the measurement's resolution: the laptop's resolver and the
		// daemon starting up give no event for the moment a name first
		// resolves.
		time.Sleep(5 * time.Millisecond)
	}
	first := time.Since(start)
	if r == nil {
		x := <-done
		r = &x
	}
	if r.err != nil {
		t.Fatalf("connect: %v\n%s", r.err, r.out)
	}
	ct := connectTiming{Command: r.d.Seconds(), FirstRequest: first.Seconds(), Tries: tries, Output: r.out}
	t.Logf("connect: %+v", ct)
	return ct
}

// portForward runs kubectl port-forward as u inside laptop l, the baseline
// every tunnel number is held against, and returns its stop function.
func portForward(t *testing.T, ctx context.Context, l *laptop, u *teleUser, tools benchToolsT, ns, pod string, port int) func() {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.name, "runuser", "-u", u.name, "--", tools.kubectl, "--kubeconfig", u.kubeconfig,
		"-n", ns, "port-forward", "pod/"+pod, fmt.Sprintf("%d:8080", port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		})
	}
	t.Cleanup(stop)
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var seen []string
		for sc.Scan() {
			if strings.Contains(sc.Text(), fmt.Sprintf("Forwarding from 127.0.0.1:%d", port)) {
				ready <- nil
				io.Copy(io.Discard, stdout) // "Handling connection for ..." lines
				return
			}
			seen = append(seen, sc.Text())
		}
		ready <- fmt.Errorf("port-forward ended: %s", strings.Join(seen, "\n"))
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("port-forward not ready after 30 s")
	}
	return stop
}

// coreDNSPodIP is where the host asks CoreDNS directly (the DNS baseline;
// the host may not use the Service address).
func coreDNSPodIP(t *testing.T, c *cluster) string {
	t.Helper()
	pods, err := c.client.CoreV1().Pods("kube-system").List(ctxFor(t, 30*time.Second), metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
	if err != nil || len(pods.Items) == 0 || pods.Items[0].Status.PodIP == "" {
		t.Fatalf("CoreDNS pod: %v", err)
	}
	return pods.Items[0].Status.PodIP
}

// podProcess finds the process whose command line contains cmdline in the
// (first) pod matching selector: every container is a process on this host,
// in a cgroup named for its pod's UID.
func podProcess(t *testing.T, c *cluster, ns, selector, cmdline string) int {
	t.Helper()
	pods, err := c.client.CoreV1().Pods(ns).List(ctxFor(t, 30*time.Second), metav1.ListOptions{LabelSelector: selector})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("pods %s in %s: %v", selector, ns, err)
	}
	out, _ := exec.Command("pgrep", "-f", cmdline).Output()
	var uids []string
	for _, p := range pods.Items {
		uids = append(uids, "pod"+string(p.UID), "pod"+strings.ReplaceAll(string(p.UID), "-", "_"))
	}
	for _, f := range strings.Fields(string(out)) {
		cg, _ := os.ReadFile("/proc/" + f + "/cgroup")
		for _, uid := range uids {
			if strings.Contains(string(cg), uid) {
				pid, _ := strconv.Atoi(f)
				return pid
			}
		}
	}
	t.Fatalf("no process %q in pods %s of %s", cmdline, selector, ns)
	return 0
}

// readStatus returns the memory lines of /proc/PID/status.
func readStatus(pid int) map[string]string {
	m := readKeyValues(fmt.Sprintf("/proc/%d/status", pid))
	for k := range m {
		if !strings.HasPrefix(k, "Vm") && !strings.HasPrefix(k, "Rss") && k != "Threads" {
			delete(m, k)
		}
	}
	return m
}

// readKeyValues reads a /proc file of "Key: value" lines.
func readKeyValues(path string) map[string]string {
	b, _ := os.ReadFile(path)
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// readRSS is VmRSS of pid in KiB (0 if it is gone).
func readRSS(pid int) int64 {
	v := strings.TrimSuffix(readStatus(pid)["VmRSS"], " kB")
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// sampleRSS samples VmRSS every 50 ms until the returned function is
// called, which returns the largest sample.
func sampleRSS(pid int) func() int64 {
	stop := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		m := readRSS(pid)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peak <- max(m, readRSS(pid))
				return
			case <-tick.C:
				m = max(m, readRSS(pid))
			}
		}
	}()
	return func() int64 { close(stop); return <-peak }
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// rssSplit says how much of pid's RSS is its own memory and how much the
// pages of its executable and libraries (shared with every process that
// maps the same file, and not the target's concern in the same way).
func rssSplit(pid int) string {
	st := readStatus(pid)
	kib := func(k string) float64 {
		n, _ := strconv.ParseFloat(strings.TrimSuffix(st[k], " kB"), 64)
		return n / 1024
	}
	pss := readRollup(pid)
	return fmt.Sprintf("anon %s MiB, file %s MiB; PSS %s MiB (file %s MiB: the executable's pages, shared with every process mapping the same file)",
		num(kib("RssAnon")), num(kib("RssFile")), num(pss["Pss"]), num(pss["Pss_File"]))
}

// podMemoryKiB is the memory charged to the pod cgroup of process pid
// (memory.usage_in_bytes on cgroup v1, memory.current on v2): what the
// kubelet accounts to the pod, ephemeral containers included. 0 if unknown.
func podMemoryKiB(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var file string
		switch {
		case strings.Contains(","+parts[1]+",", ",memory,"):
			file = filepath.Join("/sys/fs/cgroup/memory", filepath.Dir(parts[2]), "memory.usage_in_bytes")
		case parts[0] == "0" && parts[1] == "":
			file = filepath.Join("/sys/fs/cgroup", filepath.Dir(parts[2]), "memory.current")
		default:
			continue
		}
		v, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		if err == nil {
			return n / 1024
		}
	}
	return 0
}

// readRollup returns the lines of /proc/PID/smaps_rollup, in MiB.
func readRollup(pid int) map[string]float64 {
	m := map[string]float64{}
	for k, v := range readKeyValues(fmt.Sprintf("/proc/%d/smaps_rollup", pid)) {
		if n, err := strconv.ParseFloat(strings.TrimSuffix(v, " kB"), 64); err == nil {
			m[k] = n / 1024
		}
	}
	return m
}

type probeResult struct {
	at       time.Time
	failed   int
	firstErr string
	err      error
}

// probe sends GETs with header hdr: 1 to url, a new connection each, every
// 10 ms, until want(who answered) holds, and reports when; failed counts
// requests that got no answer meanwhile.
func probe(ctx context.Context, url, hdr string, want func(string) bool, limit time.Duration) <-chan probeResult {
	res := make(chan probeResult, 1)
	go func() {
		cl := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		deadline := time.Now().Add(limit)
		failed, firstErr := 0, ""
		fail := func(err string) {
			if failed++; firstErr == "" {
				firstErr = time.Now().Format("15:04:05.000 ") + err
			}
		}
		for time.Now().Before(deadline) && ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.Header.Set(hdr, "1")
			resp, err := cl.Do(req)
			if err != nil {
				fail(err.Error())
			} else {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					fail(fmt.Sprintf("status %d: %.200s", resp.StatusCode, body))
				} else if want(resp.Header.Get("X-Served-By")) {
					res <- probeResult{at: time.Now(), failed: failed, firstErr: firstErr}
					return
				}
			}
			// Sleep: the probe's resolution: what is measured is when requests
			// start to be served by the other side, which only a request shows.
			time.Sleep(10 * time.Millisecond)
		}
		res <- probeResult{failed: failed, firstErr: firstErr, err: fmt.Errorf("not within %s (%d requests failed, first: %s)", limit, failed, firstErr)}
	}()
	return res
}
