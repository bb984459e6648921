// Command dnsrec is the e2e laptops' own upstream DNS server, a leak
// counter: it logs every query it gets, one "NAME TYPE" line each, answers
// the names it is given (-answer NAME=IP: the laptop's own names, like a
// home router's) and NXDOMAIN to everything else. Nothing it answers leaves
// the machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"
)

type answers map[string]net.IP

func (a answers) String() string { return fmt.Sprint(map[string]net.IP(a)) }

func (a answers) Set(s string) error {
	name, ip, ok := strings.Cut(s, "=")
	if !ok || net.ParseIP(ip) == nil {
		return fmt.Errorf("want NAME=IP, got %q", s)
	}
	a[dns.Fqdn(strings.ToLower(name))] = net.ParseIP(ip)
	return nil
}

func main() {
	addr := flag.String("addr", "127.0.0.2:53", "address to serve on, UDP and TCP")
	logPath := flag.String("log", "", "append each query here as NAME TYPE")
	known := answers{}
	flag.Var(known, "answer", "answer NAME with IP (repeatable)")
	flag.Parse()
	out := os.Stdout
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		out = f
	}
	var mu sync.Mutex
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.RecursionAvailable = true
		if len(q.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			w.WriteMsg(m)
			return
		}
		qq := q.Question[0]
		name := strings.ToLower(qq.Name)
		mu.Lock()
		fmt.Fprintf(out, "%s %s\n", name, dns.Type(qq.Qtype))
		mu.Unlock()
		ip, ok := known[name]
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case qq.Qtype == dns.TypeA && ip.To4() != nil:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: ip.To4()})
		}
		w.WriteMsg(m)
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, ctx := errgroup.WithContext(ctx)
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: *addr, Net: network, Handler: handler}
		g.Go(srv.ListenAndServe)
		g.Go(func() error {
			<-ctx.Done()
			return srv.Shutdown()
		})
	}
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}
