package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// notInRange builds the error kube-apiserver 1.37 returns for a dry-run
// Service whose ClusterIP is outside the range, the way it builds it:
// pkg/registry/core/service/storage/alloc.go wraps ipallocator.ErrNotInRange.
func notInRange(ip, cidr string) error {
	inner := fmt.Sprintf("the provided IP (%v) is not in the valid range. The range of valid IPs is %s", ip, cidr)
	el := field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs"), []string{ip}, fmt.Sprintf("failed to allocate IP %v: %v", ip, inner))}
	return apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, probeServiceName, el)
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestParseServiceRangeError(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want []netip.Prefix
	}{
		{
			name: "as kubectl prints it",
			msg:  `The Service "kubectl-tele-cidr-probe" is invalid: spec.clusterIPs: Invalid value: ["0.0.0.1"]: failed to allocate IP 0.0.0.1: the provided IP (0.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12`,
			want: prefixes("10.96.0.0/12"),
		},
		{name: "built like the apiserver, v4", msg: notInRange("0.0.0.1", "10.43.0.0/16").Error(), want: prefixes("10.43.0.0/16")},
		{name: "built like the apiserver, v6", msg: notInRange("::1", "fd00:10:96::/108").Error(), want: prefixes("fd00:10:96::/108")},
		{
			name: "two causes, duplicated and unsorted",
			msg:  notInRange("0.0.0.1", "10.96.0.0/16").Error() + "\n" + notInRange("::1", "fd00::/108").Error() + "\nThe range of valid IPs is 10.96.0.0/16",
			want: prefixes("10.96.0.0/16", "fd00::/108"),
		},
		{name: "unmasked", msg: "The range of valid IPs is 10.96.0.1/12", want: prefixes("10.96.0.0/12")},
		{name: "mismatched network names nothing", msg: "failed to allocate IP 0.0.0.1: the provided network does not match the current range"},
		{name: "port range is not an IP range", msg: "provided port is not in the valid range. The range of valid ports is 30000-32767"},
		{name: "forbidden", msg: `services is forbidden: User "system:serviceaccount:ns:tele" cannot create resource "services"`},
		{name: "garbage cidr", msg: "The range of valid IPs is 10.96.0.0/99"},
		{name: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseServiceRangeError(tt.msg)
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseServiceRangeError(%q) = %v, want %v", tt.msg, got, tt.want)
			}
		})
	}
}

func TestClusterDomainFromSearch(t *testing.T) {
	tests := []struct {
		name   string
		search []string
		ns     string
		want   string
		wantOK bool
	}{
		{name: "kubelet order", search: []string{"team.svc.cluster.local", "svc.cluster.local", "cluster.local"}, ns: "team", want: "cluster.local", wantOK: true},
		{name: "custom domain", search: []string{"team.svc.k8s.example.com", "svc.k8s.example.com", "k8s.example.com", "corp.example.com"}, ns: "team", want: "k8s.example.com", wantOK: true},
		{name: "host search first", search: []string{"corp.example.com", "team.svc.cluster.local", "svc.cluster.local"}, ns: "team", want: "cluster.local", wantOK: true},
		{name: "trailing dots and case", search: []string{"Team.SVC.Cluster.Local."}, ns: "team", want: "cluster.local", wantOK: true},
		{name: "namespace unknown", search: []string{"svc.cluster.local", "cluster.local"}, want: "cluster.local", wantOK: true},
		{name: "namespace named svc", search: []string{"svc.svc.cluster.local", "svc.cluster.local"}, ns: "svc", want: "cluster.local", wantOK: true},
		{name: "not a pod", search: []string{"corp.example.com"}, ns: "team"},
		{name: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ClusterDomainFromSearch(tt.search, tt.ns)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ClusterDomainFromSearch(%q, %q) = %q, %v; want %q, %v", tt.search, tt.ns, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestCoverPodIPs(t *testing.T) {
	tests := []struct {
		name string
		ips  []string
		want []netip.Prefix
	}{
		{name: "one", ips: []string{"10.244.1.7"}, want: prefixes("10.244.1.0/24")},
		{name: "merged and sorted", ips: []string{"10.244.2.9", "10.244.1.7", "10.244.2.3", "10.244.1.200"}, want: prefixes("10.244.1.0/24", "10.244.2.0/24")},
		{name: "dual stack", ips: []string{"fd00:10:244:1::5", "10.244.0.5", "fd00:10:244:1::9"}, want: prefixes("10.244.0.0/24", "fd00:10:244:1::/64")},
		{name: "v4-mapped", ips: []string{"::ffff:10.1.2.3"}, want: prefixes("10.1.2.0/24")},
		{name: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ips []netip.Addr
			for _, s := range tt.ips {
				ips = append(ips, netip.MustParseAddr(s))
			}
			if got := CoverPodIPs(ips); !slices.Equal(got, tt.want) {
				t.Errorf("CoverPodIPs(%v) = %v, want %v", tt.ips, got, tt.want)
			}
		})
	}
}

func TestReadResolvConf(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    Resolver
		wantErr bool
	}{
		{
			name: "kubelet",
			text: "search team.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
			want: Resolver{Nameserver: "10.96.0.10:53", Search: []string{"team.svc.cluster.local", "svc.cluster.local", "cluster.local"}},
		},
		{name: "first usable", text: "nameserver dns.example.com\nnameserver fd00::a\nnameserver 10.0.0.1\n", want: Resolver{Nameserver: "[fd00::a]:53", Search: []string{}}},
		{name: "with port", text: "nameserver 127.0.0.1:5353\n", want: Resolver{Nameserver: "127.0.0.1:5353", Search: []string{}}},
		{name: "no nameserver", text: "search a.b\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolv.conf")
			if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadResolvConf(path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ReadResolvConf error = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (got.Nameserver != tt.want.Nameserver || !slices.Equal(got.Search, tt.want.Search)) {
				t.Errorf("ReadResolvConf = %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := ReadResolvConf(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ReadResolvConf(missing file) succeeded")
	}
}

func forbid(resource string) k8stesting.ReactionFunc {
	return func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: a.GetResource().Group, Resource: resource}, "", fmt.Errorf("RBAC: not allowed"))
	}
}

func pod(name, ip string, hostNetwork bool) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team"},
		Spec:       corev1.PodSpec{HostNetwork: hostNetwork},
		Status:     corev1.PodStatus{PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

func service(ns, name, ip string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{ClusterIP: ip, ClusterIPs: []string{ip}},
	}
}

func TestDiscover(t *testing.T) {
	resolver := Resolver{Nameserver: "10.96.0.10:53", Search: []string{"team.svc.cluster.local", "svc.cluster.local", "cluster.local"}}
	tests := []struct {
		name         string
		objects      []runtime.Object
		setup        func(*fake.Clientset)
		resolver     Resolver
		wantDomain   string
		wantServices []netip.Prefix
		wantPods     []netip.Prefix
		wantHow      []string
	}{
		{
			name: "namespace-scoped role: dry-run and pod IPs",
			objects: []runtime.Object{
				pod("a", "10.244.1.5", false), pod("b", "10.244.3.9", false), pod("host", "172.18.0.2", true),
			},
			setup: func(c *fake.Clientset) {
				c.PrependReactor("list", "servicecidrs", forbid("servicecidrs"))
				c.PrependReactor("list", "nodes", forbid("nodes"))
				c.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
					svc := a.(k8stesting.CreateAction).GetObject().(*corev1.Service)
					if !slices.Equal(a.(k8stesting.CreateActionImpl).GetCreateOptions().DryRun, []string{metav1.DryRunAll}) {
						t.Errorf("service create without DryRun=All")
					}
					if svc.Spec.ClusterIP == "::1" {
						return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, svc.Name, field.ErrorList{
							field.Invalid(field.NewPath("spec", "ipFamilies").Index(0), "IPv6", "not configured on this cluster")})
					}
					return true, nil, notInRange(svc.Spec.ClusterIP, "10.96.0.0/12")
				})
			},
			resolver:     resolver,
			wantDomain:   "cluster.local",
			wantServices: prefixes("10.96.0.0/12"),
			wantPods:     prefixes("10.244.1.0/24", "10.244.3.0/24"),
			wantHow:      []string{"dns-server:resolv.conf", "cluster-domain:resolv.conf", "service-cidr:dry-run", "pod-cidr:namespace-pods"},
		},
		{
			name: "cluster-wide reads",
			objects: []runtime.Object{
				&networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.96.0.0/16", "fd00:10:96::/108"}}},
				&networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "extra"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.97.0.0/16"}}},
				&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: corev1.NodeSpec{PodCIDRs: []string{"10.244.0.0/24"}}},
				&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}, Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24"}},
			},
			resolver:     Resolver{Nameserver: "10.96.0.10:53", Search: []string{"corp.example.com"}},
			wantDomain:   DefaultClusterDomain,
			wantServices: prefixes("10.96.0.0/16", "10.97.0.0/16", "fd00:10:96::/108"),
			wantPods:     prefixes("10.244.0.0/24", "10.244.1.0/24"),
			wantHow:      []string{"dns-server:resolv.conf", "cluster-domain:default", "service-cidr:servicecidrs", "pod-cidr:nodes"},
		},
		{
			name:    "dry-run forbidden: namespace services",
			objects: []runtime.Object{service("team", "web", "10.96.5.7"), service("team", "db", "10.100.1.1"), service("team", "headless", "None")},
			setup: func(c *fake.Clientset) {
				c.PrependReactor("list", "servicecidrs", forbid("servicecidrs"))
				c.PrependReactor("create", "services", forbid("services"))
			},
			resolver:     resolver,
			wantDomain:   "cluster.local",
			wantServices: prefixes("10.96.0.0/16", "10.100.0.0/16"),
			wantHow:      []string{"dns-server:resolv.conf", "cluster-domain:resolv.conf", "service-cidr:namespace-services", "pod-cidr:unknown"},
		},
		{
			name:    "kubernetes service readable",
			objects: []runtime.Object{service("default", "kubernetes", "10.43.0.1")},
			setup: func(c *fake.Clientset) {
				c.PrependReactor("create", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewInternalError(fmt.Errorf("etcd down"))
				})
			},
			resolver:     resolver,
			wantDomain:   "cluster.local",
			wantServices: prefixes("10.43.0.0/16"),
			wantHow:      []string{"dns-server:resolv.conf", "cluster-domain:resolv.conf", "service-cidr:kubernetes-service", "pod-cidr:unknown"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(tt.objects...)
			if tt.setup != nil {
				tt.setup(c)
			}
			info, err := Discover(context.Background(), Config{Client: c, Namespace: "team", Resolver: tt.resolver})
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if info.ClusterDomain != tt.wantDomain {
				t.Errorf("ClusterDomain = %q, want %q", info.ClusterDomain, tt.wantDomain)
			}
			if info.DNSServer != tt.resolver.Nameserver {
				t.Errorf("DNSServer = %q, want %q", info.DNSServer, tt.resolver.Nameserver)
			}
			if !slices.Equal(info.ServiceCIDRs, tt.wantServices) {
				t.Errorf("ServiceCIDRs = %v, want %v", info.ServiceCIDRs, tt.wantServices)
			}
			if !slices.Equal(info.PodCIDRs, tt.wantPods) {
				t.Errorf("PodCIDRs = %v, want %v", info.PodCIDRs, tt.wantPods)
			}
			if !slices.Equal(info.Discovery, tt.wantHow) {
				t.Errorf("Discovery = %q, want %q", info.Discovery, tt.wantHow)
			}
		})
	}
}

// A read the API server did not answer makes Discover fail with
// ErrUnanswered (its Info is fallbacks only); an answer, even a refusal, does
// not.
func TestDiscoverUnanswered(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name  string
		react k8stesting.ReactionFunc
		want  bool
	}{
		{"connection refused", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, refused }, true},
		{"503", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewServiceUnavailable("apiserver is shutting down")
		}, true},
		{"429", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewTooManyRequests("slow down", 1)
		}, true},
		{"forbidden", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: a.GetResource().Resource}, "", fmt.Errorf("RBAC: not allowed"))
		}, false},
		{"not found", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: a.GetResource().Resource}, "x")
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset()
			c.PrependReactor("*", "*", tt.react)
			info, err := Discover(context.Background(), Config{Client: c, Namespace: "team", Resolver: Resolver{Nameserver: "10.96.0.10:53"}})
			if got := errors.Is(err, ErrUnanswered); got != tt.want {
				t.Fatalf("Discover error %v: unanswered %v, want %v", err, got, tt.want)
			}
			if !slices.Contains(info.Discovery, "service-cidr:unknown") {
				t.Errorf("Discovery = %q, want the fallback service-cidr:unknown", info.Discovery)
			}
		})
	}
	// One source answering is enough: a refused pod list after the
	// ServiceCIDRs were read still fails, for the pod CIDRs are fallbacks.
	c := fake.NewClientset(&networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.96.0.0/16"}}})
	c.PrependReactor("list", "nodes", forbid("nodes"))
	c.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, refused })
	if _, err := Discover(context.Background(), Config{Client: c, Namespace: "team"}); !errors.Is(err, ErrUnanswered) || !strings.Contains(err.Error(), "list pods in namespace team") {
		t.Errorf("Discover with pods unreadable: %v, want ErrUnanswered naming the pod list", err)
	}
}
