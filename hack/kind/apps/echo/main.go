// Command echo is the test and demo workload: an HTTP server (HTTP/1.1 and
// cleartext HTTP/2) that answers with who served the request, a UDP echo
// server, and the client modes the e2e tests run inside the cluster.
//
//	echo serve [-http :8080] [-udp :9090] [-name NAME]
//	echo get [-h2c] [-H k=v]... URL...   (all URLs over one connection)
//	echo load -url URL -rps N -duration D [-H k=v]
//	echo udp ADDR MESSAGE
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: echo serve|get|load|udp ...")
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
	case "load":
		err = load(ctx, os.Args[2:])
	case "udp":
		err = udp(ctx, os.Args[2:])
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
	fs.Parse(args)
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
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Served-By", *name)
		json.NewEncoder(w).Encode(Reply{Server: *name, Proto: r.Proto, Method: r.Method, Path: r.URL.Path, Header: r.Header})
	})
	srv := &http.Server{Addr: *httpAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)

	errc := make(chan error, 2)
	go func() { errc <- srv.ListenAndServe() }()
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

// get sends one request per URL, in order, over one kept-alive connection, and
// prints one line per answer: the server's name, or "error: ...".
func get(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	h2c := fs.Bool("h2c", false, "use cleartext HTTP/2")
	var hs headers
	fs.Var(&hs, "H", "header NAME=VALUE for every request; NAME=VALUE@i for request i only")
	fs.Parse(args)
	c := client(*h2c)
	for i, u := range fs.Args() {
		req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
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
		fmt.Printf("%s %s\n", rep.Server, rep.Proto)
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
	var firstErr atomic.Value
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
			req, _ := http.NewRequest("GET", *url, nil)
			hs.apply(req)
			resp, err := c.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			ok.Add(1)
			mu.Lock()
			servers[resp.Header.Get("X-Served-By")]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	fe, _ := firstErr.Load().(string)
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"ok": ok.Load(), "failed": failed.Load(), "servers": servers, "first_error": fe})
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
