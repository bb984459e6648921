package plugin

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/target"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

func TestWriteList(t *testing.T) {
	ws := []target.Summary{
		{Kind: "Deployment", Name: "echo", Ready: 2, Want: 2, Ports: []string{"8080/http"}},
		{Kind: "StatefulSet", Name: "db", Ready: 0, Want: 1},
	}
	ics := []*teleproto.Intercept{
		{Name: "echo", WorkloadKind: "Deployment", WorkloadName: "echo", Port: 8080, LocalPort: 7070, HttpMatch: []string{"x-dev=alice"}, Mech: teleproto.Mechanism_MECHANISM_NFTABLES, Owner: "alice@laptop", Mine: true, Pods: []string{"echo-1", "echo-2"}},
		// Names are per developer: Bob's default-named intercept is echo too.
		{Name: "echo", WorkloadKind: "Deployment", WorkloadName: "echo", Port: 8080, LocalPort: 7071, HttpMatch: []string{"x-dev=bob"}, Mech: teleproto.Mechanism_MECHANISM_NFTABLES, Owner: "bob@laptop",
			Pods: []string{"echo-1"}, UncoveredPods: []string{"echo-2"}},
		// A wiretap shows its copies.
		{Name: "tap", WorkloadKind: "Deployment", WorkloadName: "echo", Port: 8080, LocalPort: 7072, Mech: teleproto.Mechanism_MECHANISM_NFTABLES, Owner: "carol@laptop", Pods: []string{"echo-1", "echo-2"},
			Kind: teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP, CopiesSent: 120, CopiesDropped: 3},
		{Name: "solo", WorkloadKind: "Pod", WorkloadName: "solo", Port: 80, LocalPort: 8000, Mech: teleproto.Mechanism_MECHANISM_SERVICE, Owner: "bob@laptop", Pods: []string{"solo"}},
		// Filters show as terms, in canonical order.
		{Name: "db", WorkloadKind: "StatefulSet", WorkloadName: "db", Port: 80, LocalPort: 8001, HttpMatch: []string{"x-dev=bob", ":path^=/api/", ":method=POST"}, Mech: teleproto.Mechanism_MECHANISM_NFTABLES, Owner: "bob@laptop"},
	}
	for _, tc := range []struct {
		only bool
		want []string
	}{
		{false, []string{
			"WORKLOAD         READY  PORTS      INTERCEPT  PORT  MATCH                                LOCAL  MECHANISM  OWNER               PODS                   KIND       COPIES",
			"deployment/echo  2/2    8080/http  echo       8080  x-dev=alice                          7070   nftables   alice@laptop (you)  2/2                    intercept  -",
			"deployment/echo  2/2    8080/http  echo       8080  x-dev=bob                            7071   nftables   bob@laptop          1/2 (joining: echo-2)  intercept  -",
			"deployment/echo  2/2    8080/http  tap        8080  (all)                                7072   nftables   carol@laptop        2/2                    wiretap    120 sent, 3 dropped",
			"statefulset/db   0/1    -          db         80    :method=POST,:path^=/api/,x-dev=bob  8001   nftables   bob@laptop          0/0                    intercept  -",
			"pod/solo         ?      ?          solo       80    (all)                                8000   service    bob@laptop          1/1                    intercept  -",
		}},
		{true, []string{
			"WORKLOAD         READY  PORTS      INTERCEPT  PORT  MATCH                                LOCAL  MECHANISM  OWNER               PODS                   KIND       COPIES",
			"deployment/echo  2/2    8080/http  echo       8080  x-dev=alice                          7070   nftables   alice@laptop (you)  2/2                    intercept  -",
			"deployment/echo  2/2    8080/http  echo       8080  x-dev=bob                            7071   nftables   bob@laptop          1/2 (joining: echo-2)  intercept  -",
			"deployment/echo  2/2    8080/http  tap        8080  (all)                                7072   nftables   carol@laptop        2/2                    wiretap    120 sent, 3 dropped",
			"statefulset/db   0/1    -          db         80    :method=POST,:path^=/api/,x-dev=bob  8001   nftables   bob@laptop          0/0                    intercept  -",
			"pod/solo         ?      ?          solo       80    (all)                                8000   service    bob@laptop          1/1                    intercept  -",
		}},
	} {
		var out bytes.Buffer
		n := writeList(&out, ws, ics, tc.only)
		var got []string
		for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			got = append(got, strings.TrimRight(l, " "))
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") || n != len(tc.want)-1 {
			t.Errorf("onlyIntercepted=%v: %d rows\n%s\nwant\n%s", tc.only, n, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
	var out bytes.Buffer
	if n := writeList(&out, ws, nil, true); n != 0 || out.Len() != 0 {
		t.Errorf("no intercepts, --intercepts: %d rows, %q; want nothing", n, out.String())
	}
}
