// Command probe is the e2e tests' intruder: run as an ordinary pod in a
// namespace with a traffic manager, it tries what only laptops (through
// port-forward) and agents (with the namespace's token) may do, and prints
// one line per attempt: "denied: ..." or "ALLOWED: ...". The agents' port
// is TLS: the intruder does not verify the manager's certificate (it has
// no reason to), so what it meets is the token check.
//
// With "environ", run in an app container that shares its pod's process
// namespace, it tries to read the environment of the agents it sees there
// (where their token came in), and, as a control, of the pod's first
// process.
//
//	probe MANAGER_POD_IP AGENT_SERVICE_ADDR
//	probe environ
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "environ" {
		environ()
		return
	}
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: probe MANAGER_POD_IP AGENT_SERVICE_ADDR | probe environ")
		os.Exit(2)
	}
	podIP, agentAddr := os.Args[1], os.Args[2]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// 1. The laptops' API, on the pod's address: it listens on loopback only.
	c, err := net.DialTimeout("tcp", net.JoinHostPort(podIP, "8081"), 3*time.Second)
	if err != nil {
		fmt.Println("denied: laptop API on the pod address:", err)
	} else {
		c.Close()
		fmt.Println("ALLOWED: laptop API on the pod address")
	}

	conn, err := grpc.NewClient(agentAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	defer conn.Close()
	agents := teleproto.NewAgentServiceClient(conn)
	for _, tok := range []string{"", "not-the-token"} {
		cctx := ctx
		if tok != "" {
			cctx = metadata.AppendToOutgoingContext(ctx, "x-tele-agent-token", tok)
		}
		// 2. Register as an agent, to learn the routes.
		st, err := agents.Watch(cctx)
		if err == nil {
			err = st.Send(&teleproto.AgentReport{Hello: &teleproto.AgentHello{ProtocolVersion: teleproto.CurrentAgentProtocolVersion, Pod: "intruder"}})
		}
		// A stream the server ended fails Send with io.EOF; its status
		// comes with Recv (grpc.ClientStream).
		if err == nil || errors.Is(err, io.EOF) {
			_, err = st.Recv()
		}
		report(fmt.Sprintf("agent Watch (token %q)", tok), err)
		// 3. Open a connection to a laptop.
		cs, err := agents.Connect(cctx)
		if err == nil {
			err = cs.Send(teleproto.InterceptedOpen("echo"))
		}
		if err == nil || errors.Is(err, io.EOF) {
			_, err = cs.Recv()
		}
		report(fmt.Sprintf("agent Connect (token %q)", tok), err)
	}
}

func report(what string, err error) {
	if err != nil {
		fmt.Printf("denied: %s: %v\n", what, err)
		return
	}
	fmt.Printf("ALLOWED: %s\n", what)
}

// environ reads /proc/PID/environ of every process in sight but its own:
// of each agent, saying whether it could and whether the agent's token
// variable was in it (never the token); of the others (the app's, the
// pod's pause process) as the control, which shows what the app may read.
func environ() {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	self := fmt.Sprint(os.Getpid())
	agents := 0
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		args := strings.Split(string(cmdline), "\x00")
		if err != nil || filepath.Base(d) == self || len(args) < 2 {
			continue
		}
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if filepath.Base(args[0]) != "kubectl-tele" || args[1] != "agent" {
			if err != nil {
				fmt.Printf("control: environ of %s (%s) unreadable: %v\n", d, args[0], err)
			} else {
				fmt.Printf("control: environ of %s (%s) read, %d bytes\n", d, args[0], len(env))
			}
			continue
		}
		agents++
		switch {
		case err != nil:
			fmt.Printf("denied: environ of agent %s: %v\n", d, err)
		case bytes.Contains(env, []byte("TELE_AGENT_TOKEN=")):
			fmt.Printf("ALLOWED: environ of agent %s, with TELE_AGENT_TOKEN\n", d)
		default:
			fmt.Printf("ALLOWED: environ of agent %s (%d bytes, no TELE_AGENT_TOKEN)\n", d, len(env))
		}
	}
	fmt.Printf("agents seen: %d\n", agents)
}
