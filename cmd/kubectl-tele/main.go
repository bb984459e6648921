// Command kubectl-tele is the kubectl plugin (kubectl tele ...), and, inside
// the cluster, the traffic manager and the traffic agent: one binary, one image.
//
// main is where the programs meet: pkg/plugin is the laptop's command line
// (CLI, daemon, privileged helper); the hidden `manager` and `agent`
// commands come from the in-cluster packages, so the laptop's packages
// import neither.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubectl-tele/kubectl-tele/pkg/agent"
	"github.com/kubectl-tele/kubectl-tele/pkg/manager"
	"github.com/kubectl-tele/kubectl-tele/pkg/plugin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := plugin.Execute(ctx, os.Args[1:], manager.NewCommand(), agent.NewCommand())
	stop()
	os.Exit(code)
}
