package plugin

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

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

// newCmdAgent is the traffic agent's entry point: the manager adds it to
// intercepted pods as an ephemeral container. Hidden from users.
func newCmdAgent() *cobra.Command {
	var cfg agent.Config
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "Run the traffic agent (inside an intercepted pod)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Token = os.Getenv("TELE_AGENT_TOKEN")
			cfg.Pod = os.Getenv("POD_NAME")
			cfg.Namespace = os.Getenv("POD_NAMESPACE")
			if cfg.Token == "" || cfg.Pod == "" || cfg.ManagerAddr == "" {
				return fmt.Errorf("agent needs --manager, TELE_AGENT_TOKEN and POD_NAME (the manager sets them)")
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
