package resolver

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRoutingDomains(t *testing.T) {
	many := make([]string, MaxRoutingDomains+10)
	for i := range many {
		many[i] = fmt.Sprintf("ns%03d", i)
	}
	tests := []struct {
		name       string
		domain, ns string
		namespaces []string
		subdomains []string
		want       []string
		public     []string
		dropped    int
	}{
		{
			name: "cannot list", domain: "cluster.local", ns: "demo",
			want: []string{"svc", "cluster.local", "pod", "demo", "default", "kube-system"},
		},
		{
			name: "listed, sorted, deduplicated", domain: "cluster.local.", ns: "Demo",
			namespaces: []string{"zeta", "demo", "alpha", "default", "kube-system", "kube-public"},
			want:       []string{"svc", "cluster.local", "pod", "demo", "default", "kube-system", "alpha", "kube-public", "zeta"},
		},
		{
			name: "subdomains of the connected namespace", domain: "cluster.local", ns: "demo",
			subdomains: []string{"db", "app", "web"}, namespaces: []string{"db"},
			want:   []string{"svc", "cluster.local", "pod", "demo", "db", "web", "default", "kube-system"},
			public: []string{"app"},
		},
		{
			// A namespace named as a TLD would capture every name of it.
			name: "public suffixes left out", domain: "cluster.local", ns: "dev",
			namespaces: []string{"app", "corp", "prod", "staging", "io"},
			want:       []string{"svc", "cluster.local", "pod", "default", "kube-system", "corp", "staging"},
			public:     []string{"dev", "app", "io", "prod"},
		},
		{
			name: "a cluster domain that is a public suffix is never routed", domain: "com", ns: "demo",
			want: []string{"svc", "pod", "demo", "default", "kube-system"},
		},
		{
			name: "no cluster domain yet", domain: "", ns: "demo",
			want: []string{"svc", "pod", "demo", "default", "kube-system"},
		},
		{
			name: "over the limit", domain: "cluster.local", ns: "demo", namespaces: many,
			want:    append([]string{"svc", "cluster.local", "pod", "demo", "default", "kube-system"}, many[:MaxRoutingDomains-6]...),
			dropped: 16,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RoutingDomains(tt.domain, tt.ns, tt.subdomains, tt.namespaces)
			if !slices.Equal(got.Domains, tt.want) {
				t.Errorf("Domains = %v\nwant %v", got.Domains, tt.want)
			}
			if !slices.Equal(got.Public, tt.public) {
				t.Errorf("Public = %v, want %v", got.Public, tt.public)
			}
			if got.Dropped != tt.dropped {
				t.Errorf("Dropped = %d, want %d", got.Dropped, tt.dropped)
			}
		})
	}
}

func TestIsPublicSuffix(t *testing.T) {
	for name, want := range map[string]bool{
		"dev": true, "app": true, "com": true, "co.uk": true, "github.io": true, "COM.": true,
		"svc": false, "pod": false, "local": false, "cluster.local": false, "default": false,
		"kube-system": false, "corp": false, "example.com": false,
	} {
		if got := IsPublicSuffix(name); got != want {
			t.Errorf("IsPublicSuffix(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestResolvedUpstreams(t *testing.T) {
	own := netip.MustParseAddr("10.96.0.10")
	tests := []struct {
		name, file string
		want       []string
		err        bool
	}{
		{name: "missing", err: true},
		{name: "stub and ours left out", file: "nameserver 127.0.0.53\nnameserver 10.96.0.10\nnameserver 192.168.1.1\nnameserver 127.0.0.54\nnameserver 192.168.1.1\nnameserver 2001:db8::1\n",
			want: []string{"192.168.1.1", "2001:db8::1"}},
		{name: "only ours", file: "nameserver 10.96.0.10\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.file != "" {
				p := filepath.Join(root, resolvedUpstreamFile)
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, []byte(tt.file), 0o644)
			}
			got, err := ResolvedUpstreams(Options{Root: root}, own)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			var gs []string
			for _, a := range got {
				gs = append(gs, a.String())
			}
			if !slices.Equal(gs, tt.want) {
				t.Errorf("= %v, want %v", gs, tt.want)
			}
		})
	}
}
