package main

// The gRPC server and clients, and the HTTP client of any method, that the
// e2e tests of filters by method and path use (TestInterceptFilters):
//
//	echo grpc-serve -grpc ADDR -name NAME
//	echo grpc [-wait D] ADDR check|watch...   (all calls on one connection)
//	echo http [-h2c] [-H NAME=VALUE[@i]]... METHOD URL [METHOD URL]...   (all on one connection)
//
// Each client prints one line per call: the name of the server that
// answered (the x-served-by header, which serve and grpc-serve set), or
// "error: ...".

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

const servedBy = "x-served-by"

// grpcServe runs the gRPC health service, every service SERVING, with an
// x-served-by header on every call.
func grpcServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("grpc-serve", flag.ExitOnError)
	addr := fs.String("grpc", ":9000", "gRPC listen address")
	name := fs.String("name", os.Getenv("POD_NAME"), "name to answer with")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	md := metadata.Pairs(servedBy, *name)
	s := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			grpc.SetHeader(ctx, md)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ss.SetHeader(md)
			return h(srv, ss)
		}),
	)
	healthpb.RegisterHealthServer(s, health.NewServer())
	fmt.Fprintf(os.Stderr, "echo %s: grpc %s\n", *name, ln.Addr())
	go func() {
		<-ctx.Done()
		s.GracefulStop()
	}()
	return s.Serve(ln)
}

// grpcCalls makes each call in turn on one connection: check is a unary
// Check, watch a server stream (Watch) read for its first message.
func grpcCalls(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("grpc", flag.ExitOnError)
	wait := fs.Duration("wait", 30*time.Second, "how long the first call waits for the server to be reachable (at most 2m)")
	fs.Parse(args)
	if fs.NArg() < 2 || *wait <= 0 || *wait > 2*time.Minute {
		return errors.New("usage: echo grpc [-wait D] ADDR check|watch...")
	}
	cc, err := grpc.NewClient("passthrough:///"+fs.Arg(0), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	for i, call := range fs.Args()[1:] {
		d := 10 * time.Second
		var opts []grpc.CallOption
		if i == 0 {
			// Until the Service's rules are in place, the first dial
			// may be refused: wait for the connection, not for an answer.
			d, opts = *wait, []grpc.CallOption{grpc.WaitForReady(true)}
		}
		cctx, cancel := context.WithTimeout(ctx, d)
		var md metadata.MD
		switch call {
		case "check":
			_, err = hc.Check(cctx, &healthpb.HealthCheckRequest{}, append(opts, grpc.Header(&md))...)
		case "watch":
			var w healthpb.Health_WatchClient
			if w, err = hc.Watch(cctx, &healthpb.HealthCheckRequest{}, opts...); err == nil {
				if _, err = w.Recv(); err == nil {
					md, err = w.Header()
				}
			}
		default:
			err = fmt.Errorf("unknown call %q: check or watch", call)
		}
		cancel()
		if err != nil {
			fmt.Printf("error: %v\n", err)
			continue
		}
		fmt.Println(strings.Join(md.Get(servedBy), ","))
	}
	return nil
}

// httpRequests sends each METHOD URL in turn over one connection, with a
// small body for the methods that carry one.
func httpRequests(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("http", flag.ExitOnError)
	h2c := fs.Bool("h2c", false, "use cleartext HTTP/2")
	var hs headers
	fs.Var(&hs, "H", "header NAME=VALUE for every request; NAME=VALUE@i for request i (from 0) only")
	fs.Parse(args)
	if fs.NArg() == 0 || fs.NArg()%2 != 0 {
		return errors.New("usage: echo http [-h2c] METHOD URL [METHOD URL]...")
	}
	tr := &http.Transport{MaxConnsPerHost: 1, DisableCompression: true}
	if *h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := 0; i < fs.NArg(); i += 2 {
		method, url := fs.Arg(i), fs.Arg(i+1)
		var body io.Reader
		if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
			body = strings.NewReader("echo")
		}
		req, err := http.NewRequestWithContext(ctx, method, url, body)
		if err != nil {
			return err
		}
		for _, h := range hs {
			kv, at, ok := strings.Cut(h, "@")
			if k, v, _ := strings.Cut(kv, "="); !ok || at == fmt.Sprint(i/2) {
				req.Header.Add(k, v)
			}
		}
		resp, err := c.Do(req)
		if err != nil {
			fmt.Printf("error: %v\n", err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			fmt.Printf("error: status %d from %s\n", resp.StatusCode, resp.Header.Get(servedBy))
			continue
		}
		fmt.Println(resp.Header.Get(servedBy))
	}
	return nil
}
