// Command kubectl-tele is the kubectl plugin (kubectl tele ...), and, inside
// the cluster, the traffic manager and the traffic agent: one binary, one image.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubectl-tele/kubectl-tele/pkg/plugin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := plugin.Execute(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
