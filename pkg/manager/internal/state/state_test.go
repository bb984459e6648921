package state

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
	"github.com/kubectl-tele/kubectl-tele/pkg/match"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// dev is a developer's session, as the table knows it.
type dev struct{ session, owner string }

var (
	alice = dev{"session-a", "alice@a-laptop"}
	bob   = dev{"session-b", "bob@b-laptop"}
	carol = dev{"session-c", "carol@c-laptop"}
)

// testPods are the pods the tests route to: RBAC lets every test
// intercept's owner attach agents to them (see allowAll).
var testPods = []string{"echo-1", "echo-2", "echo-7f9c-new", "echo-new", "other-1", "web-1", "web-new", "bare", "solo", "db-new", "other"}

// allowAll records that RBAC lets ic's owner attach agents to testPods.
func allowAll(ic *Intercept) *Intercept {
	for _, p := range testPods {
		Decide(ic, p, true)
	}
	return ic
}

// testIntercept is d's intercept name of deployment/workload's port, with
// the header match terms (none: global), not attached (no pods, no
// mechanism), whose owner RBAC lets attach agents to testPods.
func testIntercept(t *testing.T, d dev, name, workload string, port uint32, terms ...string) *Intercept {
	t.Helper()
	m, err := match.Parse(terms)
	if err != nil {
		t.Fatal(err)
	}
	return allowAll(&Intercept{
		ID: name + "/" + d.owner + "/test",
		PB: &teleproto.Intercept{
			Name: name, WorkloadKind: "Deployment", WorkloadName: workload,
			Port: port, LocalPort: 7070, HttpMatch: terms, Owner: d.owner,
		},
		Session: d.session, Match: m,
	})
}

func testWiretap(t *testing.T, d dev, name, workload string, port uint32, terms ...string) *Intercept {
	t.Helper()
	ic := testIntercept(t, d, name, workload, port, terms...)
	ic.PB.Kind = teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP
	return ic
}

func removing(ic *Intercept) *Intercept { ic.Removing = true; return ic }

// counter is a random source that counts: ids the tests can predict.
func counter() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("%08d", n) }
}

// tableOf is a table holding ics under their ids, as they are (no
// conflict check).
func tableOf(ics ...*Intercept) *Table {
	t := NewTable(counter())
	for _, ic := range ics {
		t.ics[ic.ID] = ic
	}
	return t
}

// TestConflict: names are per session, so two developers' default
// intercepts of one workload coexist; what would take another's traffic is
// refused, naming its owner.
func TestConflict(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing []*Intercept
		ic       *Intercept
		code     codes.Code // codes.OK: allowed
		says     []string
	}{
		{name: "first intercept",
			ic: testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
		{name: "another developer's default name, another match",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob")},
		{name: "another developer's name on another workload",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "other", 8080)},
		{name: "own name again",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, alice, "echo", "echo", 8080, "x-dev=carol"),
			code:     codes.AlreadyExists, says: []string{"you already have an intercept named echo", "--name"}},
		{name: "own name again on another workload",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, alice, "echo", "other", 80),
			code:     codes.AlreadyExists, says: []string{"you already have an intercept named echo (of deployment/echo)"}},
		{name: "own name again as a wiretap",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testWiretap(t, alice, "echo", "other", 80),
			code:     codes.AlreadyExists, says: []string{"you already have an intercept named echo"}},
		{name: "own name being removed",
			existing: []*Intercept{removing(testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"))},
			ic:       testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
			code:     codes.Unavailable, says: []string{"your intercept echo is being removed; try again"}},
		{name: "another developer's name being removed",
			existing: []*Intercept{removing(testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"))},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=alice")},
		{name: "own other name, another match",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, alice, "echo-2", "echo", 8080, "x-dev=alice2")},
		{name: "own other name, same match",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, alice, "echo-2", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: []string{"already intercepted by alice@a-laptop (intercept echo)"}},
		{name: "same match by another developer",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: []string{"deployment/echo port 8080 with match x-dev=alice is already intercepted by alice@a-laptop (intercept echo)"}},
		{name: "same match under another name",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "mine", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: []string{"already intercepted by alice@a-laptop"}},
		{name: "same match on another port",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 9090, "x-dev=alice")},
		{name: "same match on another workload",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "web", "web", 8080, "x-dev=alice")},
		{name: "same match on a workload of another kind and the same name",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic: func() *Intercept {
				ic := testIntercept(t, bob, "echo", "echo", 8080, "x-dev=alice")
				ic.PB.WorkloadKind = "StatefulSet"
				return ic
			}()},
		{name: "same match being removed",
			existing: []*Intercept{removing(testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"))},
			ic:       testIntercept(t, bob, "mine", "echo", 8080, "x-dev=alice")},
		{name: "same path and method filter, other order",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, ":path^=/api/", ":method=POST")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, ":method=POST", ":path^=/api/"),
			code:     codes.AlreadyExists, says: []string{"match :method=POST :path^=/api/ is already intercepted by alice@a-laptop"}},
		{name: "another path filter",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, ":path^=/api/")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, ":path=/api/")},
		{name: "a path filter beside a header one",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, ":method=POST")},
		{name: "global over a path filter",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, ":path=/x")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080),
			code:     codes.AlreadyExists, says: []string{"already has filtered intercepts", "--http-path"}},
		{name: "global over header intercepts",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080),
			code:     codes.AlreadyExists, says: []string{"port 8080 of deployment/echo already has filtered intercepts (echo by alice@a-laptop)", "--http-match"}},
		{name: "global on another port",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 9090)},
		{name: "header under a global intercept",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080)},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob"),
			code:     codes.AlreadyExists, says: []string{"port 8080 of deployment/echo is intercepted as a whole by alice@a-laptop (intercept echo)"}},
		{name: "second global intercept",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080)},
			ic:       testIntercept(t, bob, "echo", "echo", 8080),
			code:     codes.AlreadyExists, says: []string{"intercepted as a whole by alice@a-laptop"}},
		{name: "global over a global being removed",
			existing: []*Intercept{removing(testIntercept(t, alice, "echo", "echo", 8080))},
			ic:       testIntercept(t, bob, "echo", "echo", 8080)},
		{name: "own header under own global intercept",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080)},
			ic:       testIntercept(t, alice, "echo-h", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: []string{"intercepted as a whole by alice@a-laptop"}},
		{name: "the first conflict by id",
			existing: []*Intercept{testIntercept(t, bob, "b", "echo", 8080, "x-dev=b"), testIntercept(t, alice, "a", "echo", 8080, "x-dev=a")},
			ic:       testIntercept(t, carol, "c", "echo", 8080),
			code:     codes.AlreadyExists, says: []string{"(a by alice@a-laptop)"}},
		// Wiretaps take nothing, so they never conflict with one another
		// or with intercepts, global or not; names stay per session, and
		// intercepts still conflict among themselves beside a wiretap.
		{name: "wiretap beside a header intercept",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testWiretap(t, bob, "echo", "echo", 8080, "x-dev=alice")},
		{name: "wiretap under a global intercept",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080)},
			ic:       testWiretap(t, bob, "echo", "echo", 8080)},
		{name: "global wiretap over header intercepts",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testWiretap(t, bob, "tap", "echo", 8080)},
		{name: "a second identical wiretap",
			existing: []*Intercept{testWiretap(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testWiretap(t, bob, "echo", "echo", 8080, "x-dev=alice")},
		{name: "own second wiretap under another name",
			existing: []*Intercept{testWiretap(t, alice, "echo", "echo", 8080)},
			ic:       testWiretap(t, alice, "echo-2", "echo", 8080)},
		{name: "global intercept over a wiretap",
			existing: []*Intercept{testWiretap(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080)},
		{name: "intercept with a wiretap's match",
			existing: []*Intercept{testWiretap(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=alice")},
		{name: "own name of a wiretap again",
			existing: []*Intercept{testWiretap(t, alice, "echo", "echo", 8080)},
			ic:       testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: []string{"you already have an intercept named echo"}},
		{name: "intercepts still conflict beside a wiretap",
			existing: []*Intercept{testWiretap(t, alice, "tap", "echo", 8080), testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: []string{"already intercepted by alice@a-laptop (intercept echo)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := tableOf(tc.existing...)
			id, err := tb.Add(tc.ic)
			if got := status.Code(err); got != tc.code {
				t.Fatalf("code %v (%v), want %v", got, err, tc.code)
			}
			for _, s := range tc.says {
				if !strings.Contains(status.Convert(err).Message(), s) {
					t.Errorf("message %q does not say %q", status.Convert(err).Message(), s)
				}
			}
			switch {
			case err == nil && (id == "" || id != tc.ic.ID || tb.Get(id) != tc.ic || tb.Len() != len(tc.existing)+1):
				t.Errorf("added as %q (ic.ID %q): the table has %d intercepts, %v under the id", id, tc.ic.ID, tb.Len(), tb.Get(id))
			case err != nil && tb.Len() != len(tc.existing):
				t.Errorf("refused, yet the table has %d intercepts", tb.Len())
			}
		})
	}
}

// TestNewID: ids are the name, the owner and 8 random characters, never
// one the table has (a random part drawn twice is drawn again).
func TestNewID(t *testing.T) {
	draws := []string{"aaaaaaaaXX", "aaaaaaaaYY", "bbbbbbbbZZ"}
	tb := NewTable(func() string { d := draws[0]; draws = draws[1:]; return d })
	first := testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")
	second := testIntercept(t, alice, "echo-2", "echo", 8080, "x-dev=alice2")
	second.PB.Name = "echo" // the same name and owner: only the random part tells them apart
	if id, err := tb.Add(first); err != nil || id != "echo/alice@a-laptop/aaaaaaaa" {
		t.Fatalf("first: %q, %v", id, err)
	}
	tb.ics[first.ID].Session = "ended" // as if another session of alice's
	if id, err := tb.Add(second); err != nil || id != "echo/alice@a-laptop/bbbbbbbb" {
		t.Fatalf("second: %q, %v; want the id drawn again", id, err)
	}

	tb = NewTable(counter())
	seen := map[string]bool{}
	for i := range 100 {
		ic := testIntercept(t, alice, fmt.Sprint("echo-", i), "echo", uint32(1000+i))
		id, err := tb.Add(ic)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(id, ic.PB.Name+"/alice@a-laptop/") || seen[id] {
			t.Fatalf("id %q: not name/owner/, or given twice", id)
		}
		seen[id] = true
	}
}

// TestOwn: leave acts on the caller's intercept of that name only;
// another's is refused naming its owners.
func TestOwn(t *testing.T) {
	aliceEcho := testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")
	bobEcho := testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob")
	bobWeb := testIntercept(t, bob, "web", "web", 80)
	bobOld := removing(testIntercept(t, bob, "old", "web", 81))
	tb := tableOf(aliceEcho, bobEcho, bobWeb, bobOld)
	for _, tc := range []struct {
		d    dev
		name string
		want *Intercept
		code codes.Code
		says string
	}{
		{d: alice, name: "echo", want: aliceEcho},
		{d: bob, name: "echo", want: bobEcho},
		{d: bob, name: "web", want: bobWeb},
		{d: bob, name: "old", want: bobOld}, // leaving again while it is removed
		{d: alice, name: "web", code: codes.PermissionDenied, says: "intercept web is not yours: it belongs to bob@b-laptop; you can leave only your own"},
		{d: carol, name: "echo", code: codes.PermissionDenied, says: "belongs to alice@a-laptop, bob@b-laptop"},
		{d: alice, name: "nope", code: codes.NotFound, says: "you have no intercept named nope"},
	} {
		got, err := tb.Own(tc.d.session, tc.name)
		if status.Code(err) != tc.code || got != tc.want {
			t.Errorf("%s leaves %s: %v, %v; want %v, %v", tc.d.owner, tc.name, got, err, tc.want, tc.code)
			continue
		}
		if tc.says != "" && !strings.Contains(status.Convert(err).Message(), tc.says) {
			t.Errorf("%s leaves %s: message %q does not say %q", tc.d.owner, tc.name, status.Convert(err).Message(), tc.says)
		}
	}
	// Two sessions of one owner: each has its own.
	again := dev{"session-a2", alice.owner}
	tb = tableOf(aliceEcho)
	if _, err := tb.Own(again.session, "echo"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("alice's other session leaves echo: %v, want PermissionDenied", err)
	}
}

// TestRemoval: an intercept leaves in two steps. Marked removing, it keeps
// its name taken and its id known (connections it routes still reach the
// laptop), while its traffic is free for others and its agents lose it;
// deleted, its name is free again.
func TestRemoval(t *testing.T) {
	tb := NewTable(counter())
	ic := testIntercept(t, alice, "echo", "echo", 8080)
	ic.Pods, ic.Mech = PodSet{Name: "echo-1"}, mechNftables
	id, err := tb.Add(ic)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := tb.MarkRemoving("nope"); ok || got != nil {
		t.Errorf("MarkRemoving of no intercept: %v, %v", got, ok)
	}
	if got, ok := tb.MarkRemoving(id); !ok || got != ic || !ic.Removing {
		t.Fatalf("MarkRemoving: %v, %v", got, ok)
	}
	if tb.Get(id) != ic {
		t.Errorf("removing: the id is no longer known")
	}
	if r := tb.RoutesFor(pod("echo-1", nil)); len(r) != 0 {
		t.Errorf("removing: routes %v, want none", r)
	}
	if _, err := tb.Add(testIntercept(t, alice, "echo", "echo", 8080)); status.Code(err) != codes.Unavailable {
		t.Errorf("alice's echo again while removing: %v, want Unavailable", err)
	}
	if _, err := tb.Add(testIntercept(t, bob, "echo", "echo", 8080)); err != nil {
		t.Errorf("bob's global echo while alice's is removed: %v", err)
	}
	// An intercept of the same id since (not one this table would give)
	// is not deleted for the old one.
	other := *ic
	tb.ics[id] = &other
	if tb.Delete(ic) || tb.Get(id) != &other {
		t.Errorf("Delete removed another intercept of the id")
	}
	tb.ics[id] = ic
	if !tb.Delete(ic) || tb.Get(id) != nil || tb.Delete(ic) {
		t.Errorf("Delete: still there, or deleted twice")
	}
	if _, err := tb.Add(testIntercept(t, alice, "echo", "echo", 9090)); err != nil {
		t.Errorf("alice's echo after its removal: %v", err)
	}
}

// TestEnds: what a session's loss removes (its intercepts, removing or
// not, and no one else's), and what the manager's stop removes after its
// sessions' ends (every intercept whose removal has not started).
func TestEnds(t *testing.T) {
	tb := tableOf(
		testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
		removing(testIntercept(t, alice, "old", "echo", 8081)),
		testIntercept(t, alice, "web", "web", 80),
		testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob"),
		removing(testIntercept(t, bob, "gone", "echo", 8082)))
	for _, tc := range []struct {
		session string
		want    []string
	}{
		{alice.session, []string{"echo/alice@a-laptop/test", "old/alice@a-laptop/test", "web/alice@a-laptop/test"}},
		{bob.session, []string{"echo/bob@b-laptop/test", "gone/bob@b-laptop/test"}},
		{carol.session, nil},
		{"", nil},
	} {
		if got := tb.OfSession(tc.session); !slices.Equal(got, tc.want) {
			t.Errorf("session %q ends: removes %v, want %v", tc.session, got, tc.want)
		}
	}
	want := []string{"echo/alice@a-laptop/test", "echo/bob@b-laptop/test", "web/alice@a-laptop/test"}
	if got := tb.NotRemoving(); !slices.Equal(got, want) {
		t.Errorf("manager stops: removes %v, want %v", got, want)
	}
	var all []string
	for _, ic := range tb.All() {
		all = append(all, ic.ID)
	}
	if len(all) != 5 || !slices.IsSorted(all) {
		t.Errorf("All: %v, want the 5 by id", all)
	}
}

// TestRetargetsService: a retargeted Service is restored when the last
// intercept with the Service mechanism that retargeted it, or is to, leaves,
// not before, whoever's it was and whatever port it retargeted.
func TestRetargetsService(t *testing.T) {
	svc := func(ic *Intercept, services ...string) *Intercept {
		ic.Mech, ic.Services = mechService, services
		return ic
	}
	aliceEcho := svc(testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"), "echo")
	bobEcho := svc(testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob"), "echo")
	nft := testIntercept(t, carol, "echo", "echo", 8080, "x-dev=carol")
	nft.Mech, nft.Services = mechNftables, []string{"echo"}
	other := svc(testIntercept(t, carol, "web", "web", 8080), "web")
	// Its mechanism is decided, its Services not yet retargeted.
	metrics := svc(testIntercept(t, carol, "echo-9", "echo", 9090))
	metrics.ServicePorts = []*teleproto.ServicePortRef{{Service: "echo", Name: "metrics", Port: 9090, TargetPort: "9090"}}
	tb := tableOf(aliceEcho, removing(bobEcho), nft, other, metrics)
	for _, step := range []struct {
		name   string
		leaves *Intercept
		want   bool
	}{
		{"none", nil, true},
		{"alice's", aliceEcho, true},          // bob's, being removed, still uses it
		{"bob's", bobEcho, true},              // carol's 9090 is to retarget another port
		{"carol's port 9090", metrics, false}, // the nftables one needs no Service
	} {
		if step.leaves != nil && !tb.Delete(step.leaves) {
			t.Fatalf("%s not deleted", step.name)
		}
		if got := tb.RetargetsService("echo"); got != step.want {
			t.Errorf("after %s left: echo retargeted %v, want %v", step.name, got, step.want)
		}
	}
	if !tb.RetargetsService("web") || tb.RetargetsService("nope") {
		t.Errorf("web retargeted %v, nope %v; want true, false", tb.RetargetsService("web"), tb.RetargetsService("nope"))
	}
}

// TestClone: the list's view is the viewer's (Mine), shares nothing with
// the table's intercept, and has the Secret's name without key material.
// (Requests, which carry the key, are never logged: protobuf-go's String
// ignores debug_redact.)
func TestClone(t *testing.T) {
	pair := testcert.NewCA(t, "ca").Leaf(t, "echo.ns.svc")
	ic := testIntercept(t, bob, "echo", "echo", 8443, "x-dev=bob")
	ic.TLS = &teleproto.TLSCertificate{Secret: "echo-tls", CertPem: pair.CertPEM, KeyPem: pair.KeyPEM}
	ic.PB.TlsSecret = "echo-tls"
	ic.PB.Pods = []string{"echo-1"}
	for _, tc := range []struct {
		viewer string
		mine   bool
	}{{bob.session, true}, {alice.session, false}, {"", false}} {
		if got := ic.Clone(tc.viewer).GetMine(); got != tc.mine {
			t.Errorf("viewed by %q: mine %v, want %v", tc.viewer, got, tc.mine)
		}
	}
	out := ic.Clone("")
	out.Pods[0], out.HttpMatch[0] = "changed", "changed"
	if ic.PB.Pods[0] != "echo-1" || ic.PB.HttpMatch[0] != "x-dev=bob" {
		t.Errorf("the clone shares slices with the intercept")
	}
	js, err := protojson.Marshal(ic.Clone(""))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"tlsSecret":"echo-tls"`) || strings.Contains(string(js), "PRIVATE") || strings.Contains(string(js), "Pem") {
		t.Errorf("list's intercept: %s", js)
	}
}

// TestSetState: WAITING while no running pod's agent applies an
// intercept, ACTIVE once one does.
func TestSetState(t *testing.T) {
	for applied, want := range map[bool]teleproto.InterceptState{
		false: teleproto.InterceptState_INTERCEPT_STATE_WAITING,
		true:  teleproto.InterceptState_INTERCEPT_STATE_ACTIVE,
	} {
		pb := &teleproto.Intercept{}
		SetState(pb, applied)
		if got := pb.GetInterceptState(); got != want {
			t.Errorf("applied %v: %v, want %v", applied, got, want)
		}
	}
}
