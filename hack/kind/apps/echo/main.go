// Command echo is the test and demo workload: an HTTP server (HTTP/1.1 and
// cleartext HTTP/2) that answers with who served the request, a UDP echo
// server, and the client modes the e2e tests run inside the cluster.
//
//	echo serve [-http :8080] [-udp :9090] [-name NAME] [-tls-cert F -tls-key F] [-log-requests]   (with both TLS flags: HTTPS, h2 and http/1.1)
//	echo get [-h2c] [-H k=v]... URL...   (all URLs over one connection)
//	echo get -ca F [-h2] URL...   (https URLs, verified against the CA in F by their host; prints the client's protocol too)
//	echo load -url URL -rps N -duration D [-H k=v] [-latency]   (-latency: also p50/p99/max of the answered requests)
//	echo udp ADDR MESSAGE
//	echo bench -url URL -n N -c C [-H k=v]   (latency client: JSON p50, p99, rps, errors)
//	echo dns -name NAME -n N [-unique] [-server ADDR]   (lookup latency: JSON p50, p99, errors)
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: echo serve|get|http|load|udp|bench|dns|grpc-serve|grpc ...")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "get":
		err = get(ctx, os.Args[2:])
	case "http":
		err = httpRequests(ctx, os.Args[2:])
	case "grpc-serve":
		err = grpcServe(ctx, os.Args[2:])
	case "grpc":
		err = grpcCalls(ctx, os.Args[2:])
	case "load":
		err = load(ctx, os.Args[2:])
	case "udp":
		err = udp(ctx, os.Args[2:])
	case "bench":
		err = bench(ctx, os.Args[2:])
	case "dns":
		err = dnsBench(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

// Reply is what the HTTP server answers, as JSON.
type Reply struct {
	Server string              `json:"server"`
	Proto  string              `json:"proto"`
	Method string              `json:"method"`
	Path   string              `json:"path"`
	Header map[string][]string `json:"header"`
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	httpAddr := fs.String("http", ":8080", "HTTP listen address")
	udpAddr := fs.String("udp", ":9090", "UDP echo listen address (empty: none)")
	name := fs.String("name", os.Getenv("POD_NAME"), "name to answer with")
	tlsCert := fs.String("tls-cert", "", "with -tls-key: serve HTTPS (h2 and http/1.1) with this certificate chain (PEM)")
	tlsKey := fs.String("tls-key", "", "the key of -tls-cert (PEM)")
	logRequests := fs.Bool("log-requests", false, "print \"METHOD PATH\" on stdout for each request answered, to count what arrived")
	fs.Parse(args)
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("serve: -tls-cert and -tls-key go together")
	}
	if *name == "" {
		*name, _ = os.Hostname()
	}
	mux := http.NewServeMux()
	// /bytes?n=N streams N bytes: the bulk download of the benchmarks.
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := make([]byte, 64<<10)
		rand.Read(buf)
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	reply := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Served-By", *name)
		json.NewEncoder(w).Encode(Reply{Server: *name, Proto: r.Proto, Method: r.Method, Path: r.URL.Path, Header: r.Header})
		if *logRequests {
			fmt.Fprintf(os.Stdout, "%s %s\n", r.Method, r.URL.Path) // one write: lines do not interleave
		}
	}
	mux.HandleFunc("/", reply)
	// /slow?ms=N answers as / does, N ms (at most 30 s) after the request:
	// a request in flight for as long as a test needs.
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-r.Context().Done():
			return
		case <-time.After(time.Duration(min(max(ms, 0), 30000)) * time.Millisecond):
		}
		reply(w, r)
	})
	srv := &http.Server{Addr: *httpAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)

	errc := make(chan error, 2)
	if *tlsCert != "" {
		srv.Protocols.SetHTTP2(true)
		go func() { errc <- srv.ListenAndServeTLS(*tlsCert, *tlsKey) }()
	} else {
		go func() { errc <- srv.ListenAndServe() }()
	}
	var pc net.PacketConn
	if *udpAddr != "" {
		var err error
		pc, err = net.ListenPacket("udp", *udpAddr)
		if err != nil {
			return err
		}
		go func() {
			buf := make([]byte, 65535)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					errc <- nil
					return
				}
				pc.WriteTo(append([]byte(*name+": "), buf[:n]...), from)
			}
		}()
	}
	fmt.Fprintf(os.Stderr, "echo %s: http %s udp %s\n", *name, *httpAddr, *udpAddr)
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	if pc != nil {
		pc.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ",") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func (h headers) apply(r *http.Request) {
	for _, kv := range h {
		k, v, _ := strings.Cut(kv, "=")
		r.Header.Add(k, v)
	}
}

func client(h2c bool) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 0, DisableCompression: true}
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// tlsClient verifies servers against the CAs in caFile alone, over HTTP/2
// only (h2) or HTTP/1.1 only.
func tlsClient(caFile string, h2 bool) (*http.Client, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("no CA certificate in %s", caFile)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true, TLSClientConfig: &tls.Config{RootCAs: roots}}
	tr.Protocols = new(http.Protocols)
	if h2 {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}

// get sends one request per URL, in order, over one kept-alive connection, and
// prints one line per answer: the server's name, or "error: ...".
func get(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	h2c := fs.Bool("h2c", false, "use cleartext HTTP/2")
	interval := fs.Duration("interval", 0, "wait this long between requests (at most 1m), the connection idle")
	method := fs.String("X", http.MethodGet, "the requests' method (POST: a client does not send it again on a new connection when the first breaks)")
	var hs headers
	fs.Var(&hs, "H", "header NAME=VALUE for every request; NAME=VALUE@i for request i only")
	caFile := fs.String("ca", "", "verify https URLs against the CA certificates in this PEM file only (by the URL's host); each line then ends with the client's protocol")
	h2 := fs.Bool("h2", false, "with -ca: HTTP/2 over TLS (ALPN h2) only")
	fs.Parse(args)
	if *interval < 0 || *interval > time.Minute {
		return errors.New("get: -interval must be in [0, 1m]")
	}
	c := client(*h2c)
	if *caFile != "" {
		var err error
		if c, err = tlsClient(*caFile, *h2); err != nil {
			return err
		}
	}
	for i, u := range fs.Args() {
		if i > 0 && *interval > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(*interval):
			}
		}
		req, err := http.NewRequestWithContext(ctx, *method, u, nil)
		if err != nil {
			return err
		}
		for _, kv := range hs {
			kv, at, ok := strings.Cut(kv, "@")
			if ok && at != strconv.Itoa(i) {
				continue
			}
			headers{kv}.apply(req)
		}
		resp, err := c.Do(req)
		if err != nil {
			fmt.Printf("error: %v\n", err)
			continue
		}
		var rep Reply
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(body, &rep); err != nil {
			fmt.Printf("status %d: %s\n", resp.StatusCode, strings.TrimSpace(string(body)))
			continue
		}
		if *caFile != "" {
			fmt.Printf("%s %s client=%s\n", rep.Server, rep.Proto, resp.Proto)
		} else {
			fmt.Printf("%s %s\n", rep.Server, rep.Proto)
		}
		os.Stdout.Sync()
	}
	return nil
}

// load sends requests at a fixed rate for a bounded time and prints the counts
// as JSON; failures are non-2xx answers and transport errors.
func load(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	url := fs.String("url", "", "URL")
	rps := fs.Int("rps", 200, "requests per second (at most 5000)")
	dur := fs.Duration("duration", 10*time.Second, "how long (at most 5m)")
	timeline := fs.Bool("timeline", false, "also count per second (of sending, Unix time) in \"timeline\"")
	latency := fs.Bool("latency", false, "also report p50_ms, p99_ms and max_ms of the requests answered 2xx")
	var hs headers
	fs.Var(&hs, "H", "header NAME=VALUE")
	fs.Parse(args)
	if *rps <= 0 || *rps > 5000 || *dur <= 0 || *dur > 5*time.Minute {
		return errors.New("load: rps must be in 1..5000 and duration in (0, 5m]")
	}
	c := client(false)
	var ok, failed atomic.Int64
	var mu sync.Mutex
	servers := map[string]int{}
	type second struct {
		T       int64          `json:"t"`
		OK      int            `json:"ok"`
		Failed  int            `json:"failed"`
		Servers map[string]int `json:"servers"`
	}
	seconds := map[int64]*second{} // by T, when -timeline
	at := func(t time.Time) *second {
		sec := seconds[t.Unix()]
		if sec == nil {
			sec = &second{T: t.Unix(), Servers: map[string]int{}}
			seconds[t.Unix()] = sec
		}
		return sec
	}
	var errs []string        // the first few failures, with when and on what connection
	var lats []time.Duration // of the answered requests, when -latency
	tick := time.NewTicker(time.Second / time.Duration(*rps))
	defer tick.Stop()
	end := time.After(*dur)
	var wg sync.WaitGroup
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-end:
			break loop
		case <-tick.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := time.Now()
			var conn string
			trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
				conn = fmt.Sprintf("conn %s reused=%v idle=%s", i.Conn.LocalAddr(), i.Reused, i.IdleTime.Round(time.Millisecond))
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), "GET", *url, nil)
			hs.apply(req)
			resp, err := c.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					err = fmt.Errorf("status %d from %s", resp.StatusCode, resp.Header.Get("X-Served-By"))
				}
			}
			if err != nil {
				failed.Add(1)
				mu.Lock()
				if *timeline {
					at(sent).Failed++
				}
				if len(errs) < 5 {
					errs = append(errs, fmt.Sprintf("sent %s, failed after %s, %s: %v", sent.UTC().Format("15:04:05.000"), time.Since(sent).Round(time.Millisecond), conn, err))
				}
				mu.Unlock()
				return
			}
			ok.Add(1)
			mu.Lock()
			if *latency {
				lats = append(lats, time.Since(sent))
			}
			servers[resp.Header.Get("X-Served-By")]++
			if *timeline {
				sec := at(sent)
				sec.OK++
				sec.Servers[resp.Header.Get("X-Served-By")]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	var fe string
	if len(errs) > 0 {
		fe = strings.Join(errs, "; ")
	}
	out := map[string]any{"ok": ok.Load(), "failed": failed.Load(), "servers": servers, "first_error": fe}
	if *latency {
		r := summarize(lats, 0, 0)
		out["p50_ms"], out["p99_ms"], out["max_ms"] = r.P50, r.P99, r.Max
	}
	if *timeline {
		tl := slices.SortedFunc(maps.Values(seconds), func(a, b *second) int { return int(a.T - b.T) })
		out["timeline"] = tl
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func udp(ctx context.Context, args []string) error {
	if len(args) != 2 {
		return errors.New("usage: echo udp ADDR MESSAGE")
	}
	d := net.Dialer{}
	c, err := d.DialContext(ctx, "udp", args[0])
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 65535)
	for try := 0; try < 3; try++ {
		if _, err := c.Write([]byte(args[1])); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err == nil {
			fmt.Println(string(buf[:n]))
			return nil
		}
	}
	return errors.New("no UDP answer from " + args[0])
}

// BenchResult is what bench and dns print, as JSON. Latencies in milliseconds.
type BenchResult struct {
	N        int     `json:"n"`
	P50      float64 `json:"p50"`
	P99      float64 `json:"p99"`
	Max      float64 `json:"max"`
	RPS      float64 `json:"rps"`
	Errors   int64   `json:"errors"`
	MaxOpen  int64   `json:"max_open,omitempty"`
	FirstErr string  `json:"first_error,omitempty"`
}

func summarize(lat []time.Duration, elapsed time.Duration, errs int64) BenchResult {
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r := BenchResult{N: len(lat), Errors: errs}
	if len(lat) > 0 {
		r.P50 = ms(lat[len(lat)/2])
		r.P99 = ms(lat[min(len(lat)-1, len(lat)*99/100)])
		r.Max = ms(lat[len(lat)-1])
	}
	if elapsed > 0 {
		r.RPS = float64(len(lat)) / elapsed.Seconds()
	}
	return r
}

// countingConn counts the client's open connections, so bench can say how
// many flows were open at once.
type countingConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countingConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// bench runs C clients, each on its own kept-alive connection, each sending
// N sequential GETs, and prints latency percentiles as JSON. Every client
// holds its connection open until all have sent their first request, so C
// flows are open at once (the scale test's 1,000 concurrent flows).
func bench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	url := fs.String("url", "", "URL")
	n := fs.Int("n", 100, "requests per client")
	c := fs.Int("c", 1, "concurrent clients, one connection each (at most 5000)")
	timeout := fs.Duration("timeout", 30*time.Second, "per-request time limit")
	var hs headers
	fs.Var(&hs, "H", "header NAME=VALUE")
	fs.Parse(args)
	if *url == "" || *n <= 0 || *c <= 0 || *c > 5000 || *n**c > 1000000 {
		return errors.New("bench: need -url, n > 0, c in 1..5000, n*c <= 1e6")
	}
	if _, err := http.NewRequest("GET", *url, nil); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	var open, maxOpen, errs atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	lats := make([][]time.Duration, *c)
	var started, wg sync.WaitGroup
	started.Add(*c)
	wg.Add(*c)
	begin := time.Now()
	for i := range *c {
		go func() {
			defer wg.Done()
			d := &net.Dialer{Timeout: *timeout}
			tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					conn, err := d.DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					now := open.Add(1)
					for m := maxOpen.Load(); now > m && !maxOpen.CompareAndSwap(m, now); m = maxOpen.Load() {
					}
					return &countingConn{Conn: conn, open: &open}, nil
				}}
			defer tr.CloseIdleConnections()
			cl := &http.Client{Transport: tr, Timeout: *timeout}
			lat := make([]time.Duration, 0, *n)
			for j := range *n {
				req, _ := http.NewRequestWithContext(ctx, "GET", *url, nil)
				hs.apply(req)
				t0 := time.Now()
				resp, err := cl.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode/100 != 2 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					fail(err)
				} else {
					lat = append(lat, time.Since(t0))
				}
				if j == 0 {
					started.Done()
					started.Wait()
				}
			}
			lats[i] = lat
		}()
	}
	wg.Wait()
	r := summarize(slices.Concat(lats...), time.Since(begin), errs.Load())
	r.MaxOpen = maxOpen.Load()
	r.FirstErr, _ = firstErr.Load().(string)
	return json.NewEncoder(os.Stdout).Encode(r)
}

// dnsBench looks NAME up N times, one after another, with Go's own resolver
// reading the system's resolv.conf, and prints latency percentiles as JSON.
// With -unique every lookup is of a fresh name (u<run>-<i>.NAME), which no
// cache can have seen; a "no such host" answer is an answer, not an error.
func dnsBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dns", flag.ExitOnError)
	name := fs.String("name", "", "name to look up (end it with a dot to skip the search list)")
	n := fs.Int("n", 100, "lookups")
	unique := fs.Bool("unique", false, "look up a fresh name each time")
	server := fs.String("server", "", "ask this nameserver (host:port) instead of resolv.conf's")
	fs.Parse(args)
	if *name == "" || *n <= 0 || *n > 100000 {
		return errors.New("dns: need -name and n in 1..100000")
	}
	res := &net.Resolver{PreferGo: true}
	if *server != "" {
		res.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, *server)
		}
	}
	run := time.Now().UnixNano() % 1e9
	var errs int64
	var firstErr string
	lat := make([]time.Duration, 0, *n)
	begin := time.Now()
	for i := range *n {
		q := *name
		if *unique {
			q = fmt.Sprintf("u%d-%d.%s", run, i, *name)
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		t0 := time.Now()
		_, err := res.LookupHost(lctx, q)
		d := time.Since(t0)
		cancel()
		var dnsErr *net.DNSError
		if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
			errs++
			if firstErr == "" {
				firstErr = err.Error()
			}
			continue
		}
		lat = append(lat, d)
	}
	r := summarize(lat, time.Since(begin), errs)
	r.FirstErr = firstErr
	return json.NewEncoder(os.Stdout).Encode(r)
}
