// Command probe is the e2e tests' intruder: run as an ordinary pod in a
// namespace with a traffic manager, it tries what only laptops (through
// port-forward) and agents (with the namespace's token) may do, and prints
// one line per attempt: "denied: ..." or "ALLOWED: ...".
//
//	probe MANAGER_POD_IP AGENT_SERVICE_ADDR
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: probe MANAGER_POD_IP AGENT_SERVICE_ADDR")
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

	conn, err := grpc.NewClient(agentAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
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
			err = st.Send(&teleproto.AgentReport{Hello: &teleproto.AgentHello{ProtocolVersion: teleproto.ProtocolVersion_PROTOCOL_VERSION_1, Pod: "intruder"}})
		}
		if err == nil {
			_, err = st.Recv()
		}
		report(fmt.Sprintf("agent Watch (token %q)", tok), err)
		// 3. Open a connection to a laptop.
		cs, err := agents.Connect(cctx)
		if err == nil {
			err = cs.Send(teleproto.OpenIntercepted{InterceptID: "echo"}.Message())
		}
		if err == nil {
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
