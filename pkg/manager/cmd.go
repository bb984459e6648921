package manager

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

// NewCommand is the in-cluster traffic manager's entry point, the hidden
// `manager` subcommand of the one binary: the Job made
// by connect runs the image with `manager`. Hidden from users.
func NewCommand() *cobra.Command {
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
			err = Run(cmd.Context(), Config{
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
	cmd.Flags().StringVar(&listen, "listen", DefaultListenAddr, "loopback address to serve on (reached through port-forward)")
	cmd.Flags().DurationVar(&idle, "idle-timeout", DefaultIdleTimeout, "exit after this long without a session")
	cmd.Flags().DurationVar(&heartbeat, "heartbeat-timeout", DefaultHeartbeatTimeout, "end a session not heard from for this long")
	cmd.Flags().DurationVar(&refresh, "refresh-interval", DefaultRefreshInterval, "read cluster info (service and pod CIDRs) again this often; negative: never")
	return cmd
}
