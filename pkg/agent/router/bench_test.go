package router

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/match"
)

func mustMatch(specs ...string) match.Matcher { return match.MustParse(specs...) }

// BenchmarkHTTP1KeepAlive measures small requests on one keep-alive
// connection: straight to the app, through an idle router (raw splice), and
// through a router with header routes, to the app and to a laptop (HTTP
// terminated and proxied). Each router case reports its cost as a ratio to
// the direct case of the same run (x-direct).
func BenchmarkHTTP1KeepAlive(b *testing.B) {
	app, laptop := newBackend(b, "app"), newBackend(b, "alice")
	idle := startRouter(b, Config{AppAddr: app.addr()})
	routed := startRouter(b, Config{AppAddr: app.addr()}, laptop.route("alice", "x-dev=alice"))

	var direct time.Duration // per request
	run := func(name, url, dev string) {
		b.Run(name, func(b *testing.B) {
			c := h1Client(b)
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if dev != "" {
				req.Header.Set("X-Dev", dev)
			}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			per := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(time.Second)/float64(per), "req/s")
			if name == "direct" {
				direct = per
			} else if direct > 0 {
				b.ReportMetric(float64(per)/float64(direct), "x-direct")
			}
		})
	}
	run("direct", "http://"+app.addr()+"/", "")
	run("router-idle-splice", idle.url("/"), "")
	run("router-routes-to-app", routed.url("/"), "bob")
	run("router-routes-to-laptop", routed.url("/"), "alice")
}
