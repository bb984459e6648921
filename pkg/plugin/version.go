package plugin

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

// VersionOptions holds the flags of kubectl tele version.
type VersionOptions struct {
	Streams genericiooptions.IOStreams
}

// NewCmdVersion builds kubectl tele version.
func NewCmdVersion(_ *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &VersionOptions{Streams: streams}
	return &cobra.Command{
		Use:   "version",
		Short: "Print the client version and the image it deploys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(o.Streams.Out, "Client Version: %s\nImage: %s\n", version.Version, version.Image())
			return nil
		},
	}
}
