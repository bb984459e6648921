//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// auditEvent is what TestManagerNoPolling reads of an audit log line.
type auditEvent struct {
	Verb string `json:"verb"`
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	Received time.Time `json:"requestReceivedTimestamp"`
}

// requests returns the requests user made from since on, of every verb,
// from the API server's audit log (hack/kind/cluster-up.sh logs
// ServiceAccounts' requests).
func requests(t *testing.T, user string, since time.Time) []auditEvent {
	t.Helper()
	f, err := os.Open(filepath.Join(kindDir, ".cluster", "logs", "audit.log"))
	if err != nil {
		t.Fatalf("the API server's audit log (make cluster-up writes it): %v", err)
	}
	defer f.Close()
	var out []auditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e auditEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.User.Username != user || e.Received.Before(since) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// byRequest counts events by "verb resource[/subresource]".
func byRequest(es []auditEvent) map[string]int {
	m := map[string]int{}
	for _, e := range es {
		r := e.ObjectRef.Resource
		if e.ObjectRef.Subresource != "" {
			r += "/" + e.ObjectRef.Subresource
		}
		m[e.Verb+" "+r]++
	}
	return m
}

// TestManagerNoPolling: the manager learns of pods from its informer, not by
// listing or getting them on a timer or per request: over 60 s of an active
// intercept, with requests flowing and a pod replaced, its ServiceAccount
// makes no request of any verb but the informers' watches and the writes
// the replaced pod calls for; the ones it made at start are the informers'
// first lists, the discovery of the cluster's CIDRs and its setup.
func TestManagerNoPolling(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "polling", nil)
	c.deployEcho(t, ns, "echo", 2)
	ctx := ctxFor(t, 5*time.Minute)
	l := newLaptop(t, 46)
	u := newTeleUser(t, 46, nil)
	dumpLogs(t, u)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	start := time.Now().Add(-time.Second) // the audit log's clock is this machine's
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	l.localServer(t, u, 7070, "LAPTOP")
	if out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--port", "7070:8080", "--http-match", "x-dev=alice"); err != nil {
		t.Fatalf("intercept: %v\n%s", err, out)
	}
	user := "system:serviceaccount:" + ns + ":" + managerJob
	window := time.Now()
	// Requests, and a pod deleted: its replacement gets an agent from the
	// informer's event, with no list.
	if who := served(t, c, ns, "-H", "x-dev=alice@0", "http://echo:8080/", "http://echo:8080/"); len(who) != 2 || who[0] != "LAPTOP" {
		t.Fatalf("intercept not working: %v", who)
	}
	if err := c.client.CoreV1().Pods(ns).Delete(ctx, c.podsOf(t, ns, "echo")[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for time.Since(window) < 60*time.Second {
		served(t, c, ns, "-H", "x-dev=alice@0", "http://echo:8080/")
		// Sleep: paces the requests through the 60 s window whose API calls
		// are counted: the window itself is the test.
		time.Sleep(5 * time.Second)
	}
	out, _ := l.tele(ctx, u, "list")
	if !regexp.MustCompile(`(?m)^deployment/echo .* 2/2 +intercept +-$`).MatchString(out) {
		t.Errorf("list, want the intercept on both pods (the new one too):\n%s", out)
	}
	initial := requests(t, user, start)
	during := requests(t, user, window)
	t.Logf("the manager's requests: %d at start %v; %d in the %s with an active intercept %v",
		len(initial)-len(during), byRequest(initial), len(during), time.Since(window).Round(time.Second), byRequest(during))
	if len(initial) == 0 {
		t.Errorf("no request of %s in the audit log: is auditing on?", user)
	}
	everyVerb := false
	for _, e := range initial {
		everyVerb = everyVerb || e.Verb != "list"
	}
	if !everyVerb {
		// A cluster started before cluster-up.sh logged every verb: restart
		// its API server (hack/kind/apiserver.sh) with the new policy.
		t.Logf("the audit log holds only the manager's lists: its policy predates logging every verb, so only lists are counted")
	}
	// The pod replaced is the one event that calls for writes: RBAC asked
	// about it for the intercept's owner, and its agent added. Watches are
	// the informers' (a watch that times out is renewed); nothing is read
	// that the informers' caches hold.
	allowed := map[string]int{
		"create localsubjectaccessreviews": 1,
		"patch pods/ephemeralcontainers":   1,
	}
	// A patch refused as a conflict (the new pod changed under it) is
	// retried from the informer's next event: it counts apart.
	var conflicts []auditEvent
	during = slices.DeleteFunc(during, func(e auditEvent) bool {
		if e.ResponseStatus.Code == http.StatusConflict {
			conflicts = append(conflicts, e)
			return true
		}
		return false
	})
	if len(conflicts) > 0 {
		t.Logf("conflicts, retried: %v", byRequest(conflicts))
	}
	for req, n := range byRequest(during) {
		verb, _, _ := strings.Cut(req, " ")
		if verb == "watch" {
			continue
		}
		if n > allowed[req] {
			t.Errorf("the manager made %d %s request(s) while the intercept was active; the replaced pod needs %d", n, req, allowed[req])
		}
	}
}
