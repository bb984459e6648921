// Package version holds the build's version and the container image that
// carries the same build, so the plugin finds the manager and agent image
// built from its own source with no flag.
package version

// Set at link time by the Makefile (-X); a plain `go build` gives "dev".
var (
	// Version is the kubectl-tele release or, for a local build, a tag derived
	// from the source tree.
	Version = "dev"
	// ImageRepo is where the image of this build lives. The local cluster has no
	// registry; `make image` imports kubectl-tele.local/kubectl-tele:<Version>.
	ImageRepo = "kubectl-tele.local/kubectl-tele"
)

// Image is the default image reference for the manager and the agent.
func Image() string { return ImageRepo + ":" + Version }
