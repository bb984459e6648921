//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestDNSSearch (issue 15, item 5): from a laptop connected to a namespace,
// a StatefulSet's pods and a Service resolve by every name a pod of that
// namespace resolves them by (web-0.web, web-0.web.NS, echo.NS.svc, ...):
// through the C library, and asked as they are of the session's DNS server,
// as systemd-resolved and macOS send dotted names. A and AAAA are answered,
// never SERVFAIL, and the laptop's own resolver, which answers every name
// it is asked with a wrong address, is never asked about them.
func TestDNSSearch(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "dns", nil)
	c.deployEcho(t, ns, "echo", 1)
	c.deployStatefulSet(t, ns, "web", 2)
	ctx := ctxFor(t, 5*time.Minute)
	svc, err := c.client.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web0, err := c.client.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	echoIP, web0IP := svc.Spec.ClusterIP, web0.Status.PodIP

	l, u := newLaptop(t, 14), newTeleUser(t, 14, nil)
	dumpLogs(t, u)
	// The laptop's resolv.conf says nameserver 127.0.0.1: this is it.
	upstream := l.startUpstream(t)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns, "--manager-idle-timeout=10s"); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	dnsServer := net.JoinHostPort(l.status(t, ctx, u).DNS.Nameserver, "53")

	forms := []struct{ name, ip string }{
		{"web-0.web", web0IP},
		{"web-0.web." + ns, web0IP},
		{"web-0.web." + ns + ".svc", web0IP},
		{"web-0.web." + ns + ".svc.cluster.local", web0IP},
		{"echo", echoIP},
		{"echo." + ns, echoIP},
		{"echo." + ns + ".svc", echoIP},
		{"echo." + ns + ".svc.cluster.local", echoIP},
	}
	t.Run("getent hosts, every name form", func(t *testing.T) {
		for _, f := range forms {
			// CoreDNS learns the StatefulSet's pods from EndpointSlices a
			// moment after they are ready.
			eventually(t, 30*time.Second, "getent hosts "+f.name, func() error {
				out, err := l.as(ctx, u, "getent", "hosts", f.name)
				if fields := strings.Fields(out); err != nil || len(fields) == 0 || fields[0] != f.ip {
					return fmt.Errorf("getent hosts %s: %v %q, want %s", f.name, err, out, f.ip)
				}
				return nil
			})
		}
	})

	t.Run("asked as they are, A and AAAA, UDP and TCP", func(t *testing.T) {
		for _, f := range forms {
			for _, qtype := range []string{"A", "AAAA"} {
				for _, proto := range []string{"udp", "tcp"} {
					rcode, addrs := l.dig(t, ctx, proto, dnsServer, f.name+".", qtype)
					want := f.ip
					if qtype == "AAAA" {
						want = "" // the kind cluster is IPv4 only: NODATA
					}
					if rcode != "NOERROR" || strings.Join(addrs, " ") != want {
						t.Errorf("%s %s %s: %s %q, want NOERROR %q", proto, qtype, f.name, rcode, addrs, want)
					}
				}
			}
		}
		// What a stub that appends our search domains itself sends after
		// the first: the cluster's NXDOMAIN, so that it goes on.
		if rcode, addrs := l.dig(t, ctx, "udp", dnsServer, "web-0.web.svc.cluster.local.", "A"); rcode != "NXDOMAIN" {
			t.Errorf("web-0.web.svc.cluster.local.: %s %q, want NXDOMAIN", rcode, addrs)
		}
	})

	t.Run("a public name still goes to the laptop's resolver", func(t *testing.T) {
		if rcode, addrs := l.dig(t, ctx, "udp", dnsServer, "www.example.test.", "A"); rcode != "NOERROR" || strings.Join(addrs, " ") != upstreamAddr {
			t.Errorf("www.example.test.: %s %q, want the laptop resolver's %s", rcode, addrs, upstreamAddr)
		}
	})

	t.Run("the laptop's resolver was asked about no cluster name", func(t *testing.T) {
		for _, q := range upstream.asked() {
			if strings.Contains(q, "web") || strings.Contains(q, "echo") {
				t.Errorf("the laptop's resolver was asked %q", q)
			}
		}
	})
}

// deployStatefulSet runs the echo app as a StatefulSet with a headless
// Service of the same name, so that its pods have DNS names
// (name-0.name.NS.svc.cluster.local), and waits for its pods to be ready.
func (c *cluster) deployStatefulSet(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	labels := map[string]string{"app": name}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  labels,
			Ports:     []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromString("http")}},
		},
	}
	if _, err := c.client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service %s/%s: %v", ns, name, err)
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         name,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: new(int64(2)),
					Containers: []corev1.Container{{
						Name: name, Image: echoImage, ImagePullPolicy: corev1.PullIfNotPresent,
						Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
							FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
	if _, err := c.client.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create statefulset %s/%s: %v", ns, name, err)
	}
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		s, err := c.client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return s.Status.ObservedGeneration >= s.Generation && s.Status.ReadyReplicas == replicas, nil
	})
	if err != nil {
		t.Fatalf("statefulset %s/%s not ready: %v", ns, name, err)
	}
}

// upstreamAddr is what the laptop's own resolver (startUpstream) answers for
// every A question: a cluster name answered with it has leaked.
const upstreamAddr = "192.0.2.53"

// laptopHelperEnv selects what TestLaptopHelper does when this test binary
// runs inside a laptop; laptopHelperArg is its argument.
const (
	laptopHelperEnv = "TELE_E2E_LAPTOP_HELPER"
	laptopHelperArg = "TELE_E2E_LAPTOP_HELPER_ARG"
)

// TestLaptopHelper is not a test: it is this binary's entry point when a
// test runs it inside a laptop's network namespace (the way os/exec's tests
// run their helper processes), for the DNS tools the host does not have.
//
//	dig PROTO SERVER NAME TYPE  asks SERVER, prints "rcode RCODE" and an
//	                            "addr ADDR" line per A or AAAA record
//	upstream                    answers every name on 127.0.0.1:53 (UDP)
//	                            with upstreamAddr, printing "asked NAME TYPE"
func TestLaptopHelper(t *testing.T) {
	mode := os.Getenv(laptopHelperEnv)
	if mode == "" {
		t.Skip("run inside a laptop by the DNS tests")
	}
	args := strings.Fields(os.Getenv(laptopHelperArg))
	switch mode {
	case "dig":
		if len(args) != 4 {
			t.Fatalf("dig: want PROTO SERVER NAME TYPE, got %q", args)
		}
		q := new(dns.Msg)
		q.SetQuestion(args[2], dns.StringToType[args[3]])
		q.SetEdns0(1232, false)
		r, _, err := (&dns.Client{Net: args[0], Timeout: 5 * time.Second}).Exchange(q, args[1])
		if err != nil {
			fmt.Printf("error %v\n", err)
			return
		}
		fmt.Printf("rcode %s\n", dns.RcodeToString[r.Rcode])
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				fmt.Printf("addr %s\n", rr.A)
			case *dns.AAAA:
				fmt.Printf("addr %s\n", rr.AAAA)
			}
		}
	case "upstream":
		srv := &dns.Server{Addr: "127.0.0.1:53", Net: "udp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(q)
			for _, qq := range q.Question {
				fmt.Printf("asked %s %s\n", qq.Name, dns.Type(qq.Qtype))
				if qq.Qtype == dns.TypeA {
					m.Answer = append(m.Answer, &dns.A{
						Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
						A:   net.ParseIP(upstreamAddr),
					})
				}
			}
			_ = w.WriteMsg(m)
		}), NotifyStartedFunc: func() { fmt.Println("listening") }}
		if err := srv.ListenAndServe(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown helper %q", mode)
	}
}

// laptopHelper returns the command that runs TestLaptopHelper's mode inside
// l with arg.
func (l *laptop) laptopHelper(ctx context.Context, mode, arg string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.name, os.Args[0], "-test.run=^TestLaptopHelper$", "-test.timeout=0")
	cmd.Env = append(os.Environ(), laptopHelperEnv+"="+mode, laptopHelperArg+"="+arg)
	return cmd
}

// dig asks server about name, from inside l, and returns the rcode and the
// addresses of the answer.
func (l *laptop) dig(t *testing.T, ctx context.Context, proto, server, name, qtype string) (string, []string) {
	t.Helper()
	out, err := l.laptopHelper(ctx, "dig", strings.Join([]string{proto, server, name, qtype}, " ")).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s %s in %s: %v\n%s", name, qtype, l.name, err, out)
	}
	rcode := ""
	var addrs []string
	for line := range strings.Lines(string(out)) {
		switch f := strings.Fields(line); {
		case len(f) == 2 && f[0] == "rcode":
			rcode = f[1]
		case len(f) == 2 && f[0] == "addr":
			addrs = append(addrs, f[1])
		case len(f) > 0 && f[0] == "error":
			rcode = strings.TrimSpace(line)
		}
	}
	return rcode, addrs
}

// upstreamRecorder is the laptop's own resolver, started by startUpstream.
type upstreamRecorder struct {
	mu    sync.Mutex
	names []string
}

func (u *upstreamRecorder) asked() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.names...)
}

// startUpstream runs a resolver on the laptop's original nameserver
// (127.0.0.1, from laptop.sh's resolv.conf) that answers every A question
// with upstreamAddr and records what it was asked. It stops when the test
// ends.
func (l *laptop) startUpstream(t *testing.T) *upstreamRecorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := l.laptopHelper(ctx, "upstream", "")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the laptop's resolver: %v", err)
	}
	rec := &upstreamRecorder{}
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if line == "listening" {
				close(started)
				continue
			}
			if q, ok := strings.CutPrefix(line, "asked "); ok {
				rec.mu.Lock()
				rec.names = append(rec.names, q)
				rec.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel() // kills the helper: ip netns exec runs it in its own place
		<-done
		_ = cmd.Wait()
	})
	select {
	case <-started:
	case <-done:
		t.Fatalf("the laptop's resolver did not start: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the laptop's resolver did not start in 30s: %s", stderr.String())
	}
	return rec
}
