package dns

import (
	"slices"
	"strings"
	"testing"
)

func TestPodSearch(t *testing.T) {
	tests := []struct {
		ns, domain string
		want       []string
	}{
		{"demo", "cluster.local", []string{"demo.svc.cluster.local", "svc.cluster.local", "cluster.local"}},
		{"Demo.", "Cluster.Local.", []string{"demo.svc.cluster.local", "svc.cluster.local", "cluster.local"}},
		{"", "cluster.local", []string{"svc.cluster.local", "cluster.local"}},
		{"demo", "", nil},
	}
	for _, tt := range tests {
		if got := PodSearch(tt.ns, tt.domain); !slices.Equal(got, tt.want) {
			t.Errorf("PodSearch(%q, %q) = %q, want %q", tt.ns, tt.domain, got, tt.want)
		}
	}
}

// TestCandidates is the search order of every name form, as a pod of the
// namespace demo tries it. "C " marks a name asked of the cluster, "U " one
// asked of the laptop's resolver.
func TestCandidates(t *testing.T) {
	search := PodSearch("demo", "cluster.local")
	tests := []struct {
		name string
		q    string
		want []string
	}{
		{"service alone", "web.", []string{
			"C web.demo.svc.cluster.local.", "C web.svc.cluster.local.", "C web.cluster.local.", "U web."}},
		{"service.namespace", "web.other.", []string{
			"C web.other.demo.svc.cluster.local.", "C web.other.svc.cluster.local.", "C web.other.cluster.local.", "U web.other."}},
		{"service.namespace.svc", "web.other.svc.", []string{
			"C web.other.svc.demo.svc.cluster.local.", "C web.other.svc.svc.cluster.local.", "C web.other.svc.cluster.local.", "U web.other.svc."}},
		{"StatefulSet pod: hostname.service", "web-0.web.", []string{
			"C web-0.web.demo.svc.cluster.local.", "C web-0.web.svc.cluster.local.", "C web-0.web.cluster.local.", "U web-0.web."}},
		{"StatefulSet pod: hostname.service.namespace", "web-0.web.demo.", []string{
			"C web-0.web.demo.demo.svc.cluster.local.", "C web-0.web.demo.svc.cluster.local.", "C web-0.web.demo.cluster.local.", "U web-0.web.demo."}},
		{"hostname.service.namespace.svc", "web-0.web.demo.svc.", []string{
			"C web-0.web.demo.svc.demo.svc.cluster.local.", "C web-0.web.demo.svc.svc.cluster.local.", "C web-0.web.demo.svc.cluster.local.", "U web-0.web.demo.svc."}},
		{"full name: asked as it is, once", "web.demo.svc.cluster.local.", []string{
			"C web.demo.svc.cluster.local."}},
		{"full name of a StatefulSet pod", "web-0.web.demo.svc.cluster.local.", []string{
			"C web-0.web.demo.svc.cluster.local."}},
		{"completed by the OS with our second search domain: as it is", "web-0.web.svc.cluster.local.", []string{
			"C web-0.web.svc.cluster.local."}},
		{"completed by the OS with our last search domain: as it is", "web-0.web.cluster.local.", []string{
			"C web-0.web.cluster.local."}},
		{"the cluster domain itself", "cluster.local.", []string{"C cluster.local."}},
		{"mixed case and no trailing dot", "Web-0.WEB", []string{
			"C web-0.web.demo.svc.cluster.local.", "C web-0.web.svc.cluster.local.", "C web-0.web.cluster.local.", "U web-0.web."}},
		{"public name: searched first, as in a pod", "www.example.com.", []string{
			"C www.example.com.demo.svc.cluster.local.", "C www.example.com.svc.cluster.local.", "C www.example.com.cluster.local.", "U www.example.com."}},
		{"four dots: searched first", "a.b.c.d.e.", []string{
			"C a.b.c.d.e.demo.svc.cluster.local.", "C a.b.c.d.e.svc.cluster.local.", "C a.b.c.d.e.cluster.local.", "U a.b.c.d.e."}},
		{"five dots: as it is first", "a.b.c.d.e.f.", []string{
			"U a.b.c.d.e.f.", "C a.b.c.d.e.f.demo.svc.cluster.local.", "C a.b.c.d.e.f.svc.cluster.local.", "C a.b.c.d.e.f.cluster.local."}},
		{"localhost is never searched", "localhost.", []string{"U localhost."}},
		{"reverse names are never searched", "8.8.8.8.in-addr.arpa.", []string{"U 8.8.8.8.in-addr.arpa."}},
		{"root", ".", []string{"U ."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := candidateStrings(Candidates(tt.q, "cluster.local", search, PodNdots))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Candidates(%q) =\n  %s\nwant\n  %s", tt.q, strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestCandidatesEdges(t *testing.T) {
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 40) + "."
	tests := []struct {
		name      string
		q, domain string
		search    []string
		ndots     int
		want      []string
	}{
		{"no cluster domain: as it is only", "web.", "", []string{"demo.svc.cluster.local"}, 5, []string{"U web."}},
		{"no namespace", "web.", "cluster.local", PodSearch("", "cluster.local"), 5, []string{
			"C web.svc.cluster.local.", "C web.cluster.local.", "U web."}},
		{"a search domain outside the cluster is asked of the laptop", "web.", "cluster.local", []string{"demo.svc.cluster.local", "corp.example."}, 5, []string{
			"C web.demo.svc.cluster.local.", "U web.corp.example.", "U web."}},
		{"repeated and empty search domains are asked once", "web.", "cluster.local", []string{"demo.svc.cluster.local", "", "demo.svc.cluster.local."}, 5, []string{
			"C web.demo.svc.cluster.local.", "U web."}},
		{"ndots 1: a dotted name as it is first", "web-0.web.", "cluster.local", []string{"demo.svc.cluster.local"}, 1, []string{
			"U web-0.web.", "C web-0.web.demo.svc.cluster.local."}},
		{"an expansion too long for DNS is left out", long, "cluster.local", []string{"demo.svc.cluster.local"}, 5, []string{"U " + long}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := candidateStrings(Candidates(tt.q, tt.domain, tt.search, tt.ndots))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Candidates(%q) =\n  %s\nwant\n  %s", tt.q, strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func candidateStrings(cs []Candidate) []string {
	var out []string
	for _, c := range cs {
		k := "U "
		if c.Cluster {
			k = "C "
		}
		out = append(out, k+c.Name)
	}
	return out
}
