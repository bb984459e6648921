package plugin

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-tele/kubectl-tele/internal/nodump"
	"github.com/kubectl-tele/kubectl-tele/pkg/agent"
	"github.com/kubectl-tele/kubectl-tele/pkg/manager"
	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

// newCmdManager is the in-cluster traffic manager's entry point: the Job made
// by connect runs the image with `manager`. Hidden from users.
func newCmdManager() *cobra.Command {
	var listen string
	var idle, heartbeat, refresh time.Duration
	cmd := &cobra.Command{
		Use:    "manager",
		Short:  "Run the traffic manager (inside the cluster)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			cfg, err := rest.InClusterConfig()
			if err != nil {
				return fmt.Errorf("manager runs inside a pod: %w", err)
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			log.Info("manager starting", "version", version.Version, "listen", listen, "idleTimeout", idle)
			err = manager.Run(cmd.Context(), manager.Config{
				ListenAddr:       listen,
				IdleTimeout:      idle,
				HeartbeatTimeout: heartbeat,
				RefreshInterval:  refresh,
				Client:           cs,
				RESTConfig:       cfg,
				Logger:           log,
				Version:          version.Version,
			})
			if cmd.Context().Err() != nil {
				// SIGTERM (pod deleted or evicted) is a clean end: the Job
				// completes at once instead of backing off as after a failure,
				// and the next connect (or a daemon reconnecting) starts anew.
				log.Info("manager stopped by signal")
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&listen, "listen", manager.DefaultListenAddr, "loopback address to serve on (reached through port-forward)")
	cmd.Flags().DurationVar(&idle, "idle-timeout", manager.DefaultIdleTimeout, "exit after this long without a session")
	cmd.Flags().DurationVar(&heartbeat, "heartbeat-timeout", manager.DefaultHeartbeatTimeout, "end a session not heard from for this long")
	cmd.Flags().DurationVar(&refresh, "refresh-interval", manager.DefaultRefreshInterval, "read cluster info (service and pod CIDRs) again this often; negative: never")
	return cmd
}

// tokenEnv holds the agent's token, from the agents' Secret.
const tokenEnv = "TELE_AGENT_TOKEN"

// newCmdAgent is the traffic agent's entry point: the manager adds it to
// intercepted pods as an ephemeral container. Hidden from users.
func newCmdAgent() *cobra.Command {
	var cfg agent.Config
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
			return agent.Run(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&cfg.ManagerAddr, "manager", "", "the manager's agent address (host:port)")
	cmd.Flags().StringVar(&cfg.Container, "container", "", "this agent's own container, named in its hello (the manager sets it, to tell a pod's agents apart)")
	cmd.Flags().BoolVar(&cfg.NewPod, "new-pod", false, "the pod has just started: reset the connections that reach its app before the redirect")
	return cmd
}
