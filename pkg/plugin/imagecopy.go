package plugin

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

// NewCmdImage builds kubectl tele image and its subcommands.
func NewCmdImage(streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Work with the manager's and agents' image",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(NewCmdImageCopy(streams))
	return cmd
}

// ImageCopyOptions holds the flags of kubectl tele image copy.
type ImageCopyOptions struct {
	Streams  genericiooptions.IOStreams
	From, To string
	Insecure bool
	// Keychain finds credentials for both registries; by default Docker's
	// config ($DOCKER_CONFIG, ~/.docker/config.json and its helpers).
	Keychain authn.Keychain

	src name.Reference
	dst name.Tag
}

// NewCmdImageCopy builds kubectl tele image copy.
func NewCmdImageCopy(streams genericiooptions.IOStreams) *cobra.Command {
	o := &ImageCopyOptions{Streams: streams}
	cmd := &cobra.Command{
		Use:   "copy --to REGISTRY/REPO[:TAG] [--from REF]",
		Short: "Copy this build's image, all its platforms, to a registry of yours",
		Long: `Copy the image the manager and the agents run, with every platform it is built
for, to a registry the cluster can pull from. Without a tag, --to keeps the
source's (this build's version), which is what connect --registry looks for
when the repository is REGISTRY/kubectl-tele.

Credentials come from Docker's config ($DOCKER_CONFIG, else ~/.docker), as
docker login and crane auth login write it; TLS is verified against the
system's roots ($SSL_CERT_FILE and $SSL_CERT_DIR on Linux).`,
		Example: `  kubectl tele image copy --to ghcr.io/my-org/kubectl-tele
  kubectl tele connect --registry ghcr.io/my-org

  # A registry in plain HTTP
  kubectl tele image copy --to registry.lan:5000/kubectl-tele --insecure`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Complete()
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.To, "to", "", "repository to copy to, REGISTRY/REPO[:TAG]; without a tag, the source's")
	f.StringVar(&o.From, "from", version.Image(), "image to copy; by default this build's")
	f.BoolVar(&o.Insecure, "insecure", false, "talk plain HTTP, not HTTPS, to the registries")
	return cmd
}

// Complete fills in the defaults.
func (o *ImageCopyOptions) Complete() {
	if o.From == "" {
		o.From = version.Image()
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
}

// Validate parses the references.
func (o *ImageCopyOptions) Validate() error {
	var opts []name.Option
	if o.Insecure {
		opts = append(opts, name.Insecure)
	}
	var err error
	if o.src, err = name.ParseReference(o.From, opts...); err != nil {
		return usagef("--from %q: %w: give an image reference", o.From, err)
	}
	if o.To == "" {
		return usagef("give --to REGISTRY/REPO, the repository to copy to (like ghcr.io/my-org/kubectl-tele)")
	}
	o.dst, err = copyDestination(o.To, o.src, opts...)
	return err
}

// copyDestination is the tag to copy to: --to's own, else the source's.
func copyDestination(to string, src name.Reference, opts ...name.Option) (name.Tag, error) {
	if strings.Contains(to, "@") {
		return name.Tag{}, usagef("--to %q names a digest: give REGISTRY/REPO[:TAG]; the digest stays the source's", to)
	}
	// A colon after the last slash is a tag; one before it is a port.
	if strings.Contains(to[strings.LastIndex(to, "/")+1:], ":") {
		t, err := name.NewTag(to, opts...)
		if err != nil {
			return name.Tag{}, usagef("--to %q: %w: give REGISTRY/REPO[:TAG] in lower case", to, err)
		}
		return t, nil
	}
	repo, err := name.NewRepository(to, opts...)
	if err != nil {
		return name.Tag{}, usagef("--to %q: %w: give REGISTRY/REPO[:TAG] in lower case", to, err)
	}
	t, ok := src.(name.Tag)
	if !ok {
		return name.Tag{}, usagef("--from %s has no tag to keep: give --to a tag (%s:TAG)", src, to)
	}
	return repo.Tag(t.TagStr()), nil
}

// Run copies the image, or the index and every image in it, and says how to
// use the copy.
func (o *ImageCopyOptions) Run(ctx context.Context) error {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.Keychain),
		remote.WithUserAgent("kubectl-tele/" + version.Version),
	}
	desc, err := remote.Get(o.src, opts...)
	if err != nil {
		return fmt.Errorf("read image %s: %w (credentials come from your docker config, DOCKER_CONFIG; a registry with a private CA needs SSL_CERT_FILE)", o.src, err)
	}
	var digest v1.Hash
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return fmt.Errorf("read image index %s: %w", o.src, err)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return fmt.Errorf("read image index %s: %w", o.src, err)
		}
		fmt.Fprintf(o.Streams.ErrOut, "copying %s (%s) to %s\n", o.src, platforms(m), o.dst)
		if err := remote.WriteIndex(o.dst, idx, opts...); err != nil {
			return fmt.Errorf("write image index %s: %w", o.dst, err)
		}
		digest = desc.Digest
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return fmt.Errorf("read image %s: %w", o.src, err)
		}
		fmt.Fprintf(o.Streams.ErrOut, "copying %s (one platform) to %s\n", o.src, o.dst)
		if err := remote.Write(o.dst, img, opts...); err != nil {
			return fmt.Errorf("write image %s: %w", o.dst, err)
		}
		digest = desc.Digest
	default:
		return fmt.Errorf("image %s is a %s, neither an image nor an index: copy it with another tool", o.src, desc.MediaType)
	}
	fmt.Fprintf(o.Streams.Out, "copied %s -> %s@%s\n", o.src, o.dst, digest)
	repo := o.dst.Context().Name()
	if reg, ok := strings.CutSuffix(repo, "/"+version.ImageName); ok && o.dst.TagStr() == version.Version {
		fmt.Fprintf(o.Streams.Out, "use it with: kubectl tele connect --registry %s\n", reg)
	} else {
		fmt.Fprintf(o.Streams.Out, "use it with: kubectl tele connect --manager-image %s\n", o.dst)
	}
	return nil
}

// platforms lists an index's platforms, for progress.
func platforms(m *v1.IndexManifest) string {
	var out []string
	for _, d := range m.Manifests {
		if d.Platform != nil {
			out = append(out, d.Platform.String())
		}
	}
	if len(out) == 0 {
		return fmt.Sprintf("%d manifests", len(m.Manifests))
	}
	return strings.Join(out, ", ")
}
