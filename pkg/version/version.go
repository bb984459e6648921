// Package version holds the build's version and the container image that
// carries the same build, so the plugin finds the manager and agent image
// built from its own source with no flag.
package version

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Set at link time by the Makefile (-X); a plain `go build` gives "dev".
var (
	// Version is the kubectl-tele release or, for a local build, a tag derived
	// from the source tree.
	Version = "dev"
	// ImageRepo is where the image of this build lives: for a release, the
	// release registry (the Makefile's RELEASE_REGISTRY); for a local build, the
	// local cluster's registry, where `make image` pushes it. A plain `go build`
	// has no image of its own: the value only has to be a valid reference.
	ImageRepo = "ghcr.io/kubectl-tele/kubectl-tele"
)

// Image is the default image reference for the manager and the agent.
func Image() string { return ImageRepo + ":" + Version }

// ImageName is the last element of the image's repository in every registry:
// `kubectl tele image copy` puts it there and `connect --registry` finds it.
const ImageName = "kubectl-tele"

// ImageIn is this build's image in registry (HOST[:PORT][/PATH], as
// ghcr.io/my-org or localhost:5000): registry/kubectl-tele:Version. It fails
// when registry is not a registry and path, with a message saying what to give.
func ImageIn(registry string) (string, error) {
	if strings.Contains(registry, "://") {
		return "", fmt.Errorf("registry %q: give HOST[:PORT][/PATH] without a scheme (like ghcr.io/my-org)", registry)
	}
	reg := strings.TrimSuffix(registry, "/")
	if reg == "" {
		return "", errors.New("registry is empty: give HOST[:PORT][/PATH] (like ghcr.io/my-org)")
	}
	// go-containerregistry lets an empty path element through; registries do not.
	if slices.Contains(strings.Split(reg, "/"), "") {
		return "", fmt.Errorf("registry %q has an empty path element: give HOST[:PORT][/PATH] (like ghcr.io/my-org)", registry)
	}
	ref := reg + "/" + ImageName + ":" + Version
	// Strict: the tag is always there; the check is that HOST and PATH are a
	// registry and a repository (no tag, digest or upper case of their own).
	if _, err := name.NewTag(ref, name.StrictValidation); err != nil {
		return "", fmt.Errorf("registry %q: %w: give HOST[:PORT][/PATH] in lower case, without a tag or digest (like ghcr.io/my-org)", registry, err)
	}
	return ref, nil
}
