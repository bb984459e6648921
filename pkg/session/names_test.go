package session

import (
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
)

func TestSubdomainsOf(t *testing.T) {
	host := "db-0"
	empty := ""
	slice := func(svc string, hostnames ...*string) discoveryv1.EndpointSlice {
		s := discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{discoveryv1.LabelServiceName: svc}}}
		for _, h := range hostnames {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Hostname: h})
		}
		return s
	}
	got := subdomainsOf([]discoveryv1.EndpointSlice{
		slice("db", nil, &host), // a StatefulSet's pods have hostnames
		slice("db", &host),      // a second slice of the same Service
		slice("web", nil),       // a Deployment's pods do not
		slice("odd", &empty),
		slice("", &host), // not a Service's
	})
	if !slices.Equal(got, []string{"db"}) {
		t.Errorf("subdomainsOf = %v, want [db]", got)
	}
}

func TestRoutingSet(t *testing.T) {
	d := &Daemon{cfg: Config{Namespace: "demo", Manager: managerclient.Manager{Namespace: "ops"}, DNSNamespaces: []string{"shared", "app"}}}
	got := d.routingSet("cluster.local", routingSources{subdomains: []string{"db"}})
	want := []string{"svc", "cluster.local", "pod", "demo", "db", "default", "kube-system", "ops", "shared"}
	if !slices.Equal(got.Domains, want) || !slices.Equal(got.Public, []string{"app"}) {
		t.Errorf("routingSet = %v (public %v), want %v (public [app])", got.Domains, got.Public, want)
	}
}
