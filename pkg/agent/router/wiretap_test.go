package router

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/match"
)

// recorder is a laptop's server that records the copies it receives.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []string // "PROTO METHOD URI host=HOST x-dev=X body=LEN"
	hold chan struct{}
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec.hold != nil {
			<-rec.hold
		}
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.got = append(rec.got, fmt.Sprintf("%s %s %s host=%s x-dev=%s body=%d", r.Proto, r.Method, r.RequestURI, r.Host, r.Header.Get("X-Dev"), len(b)))
		rec.mu.Unlock()
		fmt.Fprint(w, "LAPTOP: discarded")
	}))
	rec.srv.Config.Protocols = h1h2c()
	rec.srv.Config.DisableGeneralOptionsHandler = true // to see OPTIONS *
	rec.srv.Start()
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) copies() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.got...)
}

func (rec *recorder) route(id string, specs ...string) Route {
	return Route{ID: id, Match: match.MustParse(specs...), Dial: dialTo(rec.srv.Listener.Addr().String()), Wiretap: true}
}

// bodyApp answers with the length of the body it read, to show the real
// request reached it whole.
func bodyApp(t *testing.T) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "app %s read %d", r.Method, len(b))
	}))
	srv.Config.Protocols = h1h2c()
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// countersMoved has a value when a tap's counters changed since it was last
// read.
var countersMoved = make(chan struct{}, 1)

func init() {
	countersChanged = func() {
		select {
		case countersMoved <- struct{}{}:
		default:
		}
	}
}

// waitCounters waits until a tap's counters satisfy done, reading them again
// each time a tap counts, and returns them.
func waitCounters(t *testing.T, r *Router, id string, done func(WiretapCounters) bool) WiretapCounters {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		got := r.WiretapStats()[id]
		if done(got) {
			return got
		}
		select {
		case <-countersMoved:
		case <-timeout:
			return got
		}
	}
}

func waitStats(t *testing.T, r *Router, id string, want WiretapCounters) {
	t.Helper()
	if got := waitCounters(t, r, id, func(c WiretapCounters) bool { return c == want }); got != want {
		t.Fatalf("wiretap %s counters %+v, want %+v", id, got, want)
	}
}

func send(t *testing.T, c *http.Client, method, url string, body io.Reader, length int64, hdr ...string) string {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	for i := 0; i < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return string(b)
}

// TestWiretapCopies: the app answers every request; the laptop gets a copy
// of each matching one (method, URI, Host, headers, body), in HTTP/1.1 and
// h2c, and none of the others.
func TestWiretapCopies(t *testing.T) {
	rec := newRecorder(t)
	tr := startRouter(t, Config{AppAddr: bodyApp(t)}, rec.route("tap", "x-dev=alice"))
	h1, h2 := h1Client(t), h2cClient(t)

	for _, tc := range []struct {
		c      *http.Client
		method string
		uri    string
		body   string
		dev    string
	}{
		{h1, "GET", "/a?x=1&y=%2F", "", "alice"},
		{h1, "POST", "/b", "hello", "alice"},
		{h1, "GET", "/c", "", "bob"},
		{h2, "PUT", "/d", "h2 body", "alice"},
		{h2, "GET", "/e", "", ""},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		got := send(t, tc.c, tc.method, tr.url(tc.uri), body, int64(len(tc.body)), "X-Dev", tc.dev)
		if want := fmt.Sprintf("app %s read %d", tc.method, len(tc.body)); got != want {
			t.Errorf("%s %s: answered %q, want %q", tc.method, tc.uri, got, want)
		}
	}
	waitStats(t, tr.Router, "tap", WiretapCounters{Sent: 3})
	host := tr.addr
	want := []string{
		"HTTP/1.1 GET /a?x=1&y=%2F host=" + host + " x-dev=alice body=0",
		"HTTP/1.1 POST /b host=" + host + " x-dev=alice body=5",
		"HTTP/2.0 PUT /d host=" + host + " x-dev=alice body=7",
	}
	got := rec.copies()
	slices.Sort(got) // several senders: in any order
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("copies:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestWiretapBodyBound: a body up to MaxCopyBody is copied; a bigger one,
// of known or unknown length, reaches the app whole and its copy is
// dropped and counted.
func TestWiretapBodyBound(t *testing.T) {
	rec := newRecorder(t)
	tr := startRouter(t, Config{AppAddr: bodyApp(t)}, rec.route("tap"))
	c := h1Client(t)
	for _, tc := range []struct {
		n       int
		chunked bool
	}{
		{MaxCopyBody, false},
		{MaxCopyBody, true},
		{MaxCopyBody + 1, false},
		{MaxCopyBody + 1, true},
		{4 * MaxCopyBody, true},
	} {
		length := int64(tc.n)
		var body io.Reader = strings.NewReader(strings.Repeat("x", tc.n))
		if tc.chunked {
			length = -1
			body = io.MultiReader(body) // hides the length
		}
		if got, want := send(t, c, "POST", tr.url("/up"), body, length), fmt.Sprintf("app POST read %d", tc.n); got != want {
			t.Errorf("%d bytes (chunked %v): %q, want %q", tc.n, tc.chunked, got, want)
		}
	}
	waitStats(t, tr.Router, "tap", WiretapCounters{Sent: 2, Dropped: 3})
	for _, cp := range rec.copies() {
		if !strings.HasSuffix(cp, fmt.Sprintf("body=%d", MaxCopyBody)) {
			t.Errorf("copy %q, want a body of %d bytes", cp, MaxCopyBody)
		}
	}
}

// TestWiretapQueueFull: a laptop that does not answer holds up to
// CopySenders copies in flight and CopyQueue queued; the rest are dropped,
// and the app's answers do not wait for any of it.
func TestWiretapQueueFull(t *testing.T) {
	rec := newRecorder(t)
	rec.hold = make(chan struct{})
	tr := startRouter(t, Config{AppAddr: bodyApp(t)}, rec.route("tap"))
	c := h1Client(t)
	const n = CopyQueue + 10
	start := time.Now()
	for range n {
		send(t, c, "GET", tr.url("/"), nil, 0)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("%d requests took %s with the laptop stuck", n, d)
	}
	// A copy is queued after its answer has left, so the last ones may
	// still be on their way to the queue: wait for them.
	got := waitCounters(t, tr.Router, "tap", func(c WiretapCounters) bool { return c.Dropped >= n-CopyQueue-CopySenders })
	// The senders hold up to CopySenders copies (fewer if they had not
	// taken them yet) while the queue is full.
	if got.Sent != 0 || got.Dropped < n-CopyQueue-CopySenders || got.Dropped > n-CopyQueue {
		t.Errorf("with the laptop stuck: %+v, want 0 sent and %d to %d dropped", got, n-CopyQueue-CopySenders, n-CopyQueue)
	}
	close(rec.hold)
	waitStats(t, tr.Router, "tap", WiretapCounters{Sent: n - got.Dropped, Dropped: got.Dropped})
}

// TestTapOffer: the queue never blocks the caller; a full one drops.
func TestTapOffer(t *testing.T) {
	tp := &tap{queue: make(chan *wireCopy, 2)}
	for range 5 {
		tp.offer(&wireCopy{})
	}
	if got := tp.counters(); got.Dropped != 3 || len(tp.queue) != 2 {
		t.Errorf("after 5 offers to a queue of 2: %+v, %d queued; want 3 dropped, 2 queued", got, len(tp.queue))
	}
}

// TestWiretapLaptopDown: copies the laptop cannot take are dropped and
// counted; every request is still answered by the app.
func TestWiretapLaptopDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name string
		dial func(context.Context) (net.Conn, error)
	}{
		{"nothing listens", dialTo(closed)},
		{"laptop gone", goneDial},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := startRouter(t, Config{AppAddr: bodyApp(t)}, Route{ID: "tap", Match: match.MustParse(), Dial: tc.dial, Wiretap: true})
			c := h1Client(t)
			for range 5 {
				send(t, c, "GET", tr.url("/"), nil, 0)
			}
			waitStats(t, tr.Router, "tap", WiretapCounters{Dropped: 5})
		})
	}
}

// TestWiretapWithIntercept: an intercept takes its matching requests, the
// app the others, and a wiretap of all requests gets a copy of each.
func TestWiretapWithIntercept(t *testing.T) {
	rec := newRecorder(t)
	bob := newBackend(t, "BOB")
	tr := startRouter(t, Config{AppAddr: bodyApp(t)}, bob.route("icpt", "x-dev=bob"), rec.route("tap"))
	c := h1Client(t)
	if got := send(t, c, "GET", tr.url("/1"), nil, 0, "X-Dev", "bob"); !strings.HasPrefix(got, "BOB ") {
		t.Errorf("x-dev=bob: %q, want BOB's answer", got)
	}
	if got := send(t, c, "GET", tr.url("/2"), nil, 0, "X-Dev", "carol"); got != "app GET read 0" {
		t.Errorf("x-dev=carol: %q, want the app's answer", got)
	}
	waitStats(t, tr.Router, "tap", WiretapCounters{Sent: 2})
	if got := len(rec.copies()); got != 2 {
		t.Errorf("%d copies, want 2", got)
	}
}

// TestWiretapRoutes: a wiretap's counters survive SetRoutes while its route
// stays; removing the route stops its sender; a wiretap alone still serves
// the port request by request.
func TestWiretapRoutes(t *testing.T) {
	rec := newRecorder(t)
	tr := startRouter(t, Config{AppAddr: bodyApp(t)}, rec.route("tap"))
	c := h1Client(t)
	send(t, c, "GET", tr.url("/"), nil, 0)
	waitStats(t, tr.Router, "tap", WiretapCounters{Sent: 1})
	tr.mu.Lock()
	tp := tr.taps["tap"]
	tr.mu.Unlock()

	tr.SetRoutes([]Route{rec.route("tap", "x-dev=alice")})
	send(t, c, "GET", tr.url("/"), nil, 0)
	send(t, c, "GET", tr.url("/"), nil, 0, "X-Dev", "alice")
	waitStats(t, tr.Router, "tap", WiretapCounters{Sent: 2})

	tr.SetRoutes(nil)
	select {
	case <-tp.done:
	default:
		t.Error("the sender of a removed wiretap still runs")
	}
	if s := tr.WiretapStats(); len(s) != 0 {
		t.Errorf("stats after the wiretap left: %v", s)
	}
	send(t, c, "GET", tr.url("/"), nil, 0)
	if got := len(rec.copies()); got != 2 {
		t.Errorf("%d copies after the wiretap left, want 2", got)
	}
}

// TestWiretapStopsWithServe: Serve's end stops every sender.
func TestWiretapStopsWithServe(t *testing.T) {
	rec := newRecorder(t)
	tr := startRouter(t, Config{AppAddr: bodyApp(t)}, rec.route("tap"))
	tr.mu.Lock()
	tp := tr.taps["tap"]
	tr.mu.Unlock()
	tr.stop(t)
	select {
	case <-tp.done:
	case <-time.After(time.Second):
		t.Fatal("the sender outlived Serve")
	}
	tr.SetRoutes([]Route{rec.route("tap2")})
	if s := tr.WiretapStats(); len(s) != 0 {
		t.Errorf("a wiretap started after Serve ended: %v", s)
	}

}

// TestWiretapOptionsStar: an OPTIONS * request (asterisk-form, RFC 9112
// 3.2.4) reaches the app as it was sent (net/http does not answer it in
// the agent's place), and its copy too, not taken for a laptop outage.
func TestWiretapOptionsStar(t *testing.T) {
	rec := newRecorder(t)
	appSaw := make(chan string, 1)
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		appSaw <- r.Method + " " + r.RequestURI
	}))
	app.Config.DisableGeneralOptionsHandler = true
	app.Start()
	t.Cleanup(app.Close)
	tr := startRouter(t, Config{AppAddr: app.Listener.Addr().String()}, rec.route("tap"))
	req, err := http.NewRequest("OPTIONS", tr.url("/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Path, req.URL.Opaque = "", "*"
	resp, err := h1Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := <-appSaw; got != "OPTIONS *" {
		t.Errorf("the app saw %q", got)
	}
	waitStats(t, tr.Router, "tap", WiretapCounters{Sent: 1})
	if got, want := rec.copies(), []string{"HTTP/1.1 OPTIONS * host=" + tr.addr + " x-dev= body=0"}; !slices.Equal(got, want) {
		t.Errorf("copies %q, want %q", got, want)
	}
}
