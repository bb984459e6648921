package agent

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/kubectl-tele/kubectl-tele/internal/nodump"
	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

// tokenEnv holds the agent's token, from the agents' Secret.
const tokenEnv = "TELE_AGENT_TOKEN"

// NewCommand is the traffic agent's entry point, the hidden `agent`
// subcommand of the one binary: the manager adds it to
// intercepted pods as an ephemeral container. Hidden from users.
func NewCommand() *cobra.Command {
	var cfg Config
	cmd := &cobra.Command{
		Use:    nodump.AgentCommand,
		Short:  "Run the traffic agent (inside an intercepted pod)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Before the token is read: the app beside the agent must not
			// read it from /proc (see package nodump, whose init has done
			// this already where it could).
			if err := nodump.Set(); err != nil {
				return fmt.Errorf("agent: %w", err)
			}
			cfg.Token = os.Getenv(tokenEnv)
			// Out of Go's copy of the environment (os.Environ, a child's
			// environment); /proc keeps the original, which nodump guards.
			os.Unsetenv(tokenEnv)
			cfg.ManagerCA = []byte(os.Getenv("TELE_AGENT_CA"))
			cfg.Pod = os.Getenv("POD_NAME")
			cfg.Namespace = os.Getenv("POD_NAMESPACE")
			if cfg.Token == "" || cfg.Pod == "" || cfg.Namespace == "" || cfg.ManagerAddr == "" || len(cfg.ManagerCA) == 0 {
				return fmt.Errorf("agent needs --manager, %s, TELE_AGENT_CA, POD_NAME and POD_NAMESPACE (the manager sets them)", tokenEnv)
			}
			cfg.Version = version.Version
			cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("pod", cfg.Pod)
			return Run(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&cfg.ManagerAddr, "manager", "", "the manager's agent address (host:port)")
	cmd.Flags().StringVar(&cfg.Container, "container", "", "this agent's own container, named in its hello (the manager sets it, to tell a pod's agents apart)")
	cmd.Flags().BoolVar(&cfg.NewPod, "new-pod", false, "the pod has just started: reset the connections that reach its app before the redirect")
	return cmd
}
