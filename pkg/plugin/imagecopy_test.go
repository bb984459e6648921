package plugin

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

// pushRandomIndex puts an index of two random images, linux/amd64 and
// linux/arm64, at ref and returns its digest.
func pushRandomIndex(t *testing.T, ref string) v1.Hash {
	t.Helper()
	idx := v1.ImageIndex(empty.Index)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(512, 2)
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	if err := remote.WriteIndex(mustRef(t, ref), idx); err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestImageCopy(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials of this machine's
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	tests := []struct {
		name     string
		from, to string
		wantDst  string // the tag copied to
		wantUse  string
	}{
		{name: "keeps this build's tag", from: host + "/src/kubectl-tele:" + version.Version, to: host + "/mirror/kubectl-tele",
			wantDst: host + "/mirror/kubectl-tele:" + version.Version, wantUse: "kubectl tele connect --registry " + host + "/mirror\n"},
		{name: "own tag", from: host + "/src/kubectl-tele:v9", to: host + "/other/tele:copy",
			wantDst: host + "/other/tele:copy", wantUse: "kubectl tele connect --manager-image " + host + "/other/tele:copy\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srcDigest := pushRandomIndex(t, tt.from)
			var out, errOut bytes.Buffer
			o := &ImageCopyOptions{Streams: genericiooptions.IOStreams{Out: &out, ErrOut: &errOut}, From: tt.from, To: tt.to}
			o.Complete()
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			if err := o.Run(context.Background()); err != nil {
				t.Fatalf("%v\nstderr: %s", err, errOut.String())
			}
			wantOut := "copied " + tt.from + " -> " + tt.wantDst + "@" + srcDigest.String() + "\nuse it with: " + tt.wantUse
			if out.String() != wantOut {
				t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), wantOut)
			}
			if !strings.Contains(errOut.String(), "linux/amd64, linux/arm64") {
				t.Errorf("stderr %q does not list the platforms", errOut.String())
			}

			idx, err := remote.Index(mustRef(t, tt.wantDst))
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := idx.Digest(); d != srcDigest {
				t.Errorf("destination digest %s, want the source's %s", d, srcDigest)
			}
			m, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			var archs []string
			for _, desc := range m.Manifests {
				archs = append(archs, desc.Platform.Architecture)
				// Every layer of every platform arrived, not just the manifests.
				img, err := remote.Image(mustRef(t, tt.wantDst).Context().Digest(desc.Digest.String()))
				if err != nil {
					t.Fatal(err)
				}
				layers, err := img.Layers()
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range layers {
					rc, err := l.Compressed()
					if err != nil {
						t.Fatalf("layer of %s: %v", desc.Platform, err)
					}
					rc.Close()
				}
			}
			if !slices.Equal(archs, []string{"amd64", "arm64"}) {
				t.Errorf("platforms %v, want amd64 and arm64", archs)
			}
		})
	}
}

func TestImageCopyValidate(t *testing.T) {
	tests := []struct {
		name, from, to string
		wantDst        string
		wantErr        string
	}{
		{name: "default from, no tag", to: "ghcr.io/my-org/kubectl-tele", wantDst: "ghcr.io/my-org/kubectl-tele:" + version.Version},
		{name: "port, no tag", from: "a.io/x:v1", to: "localhost:5000/kubectl-tele", wantDst: "localhost:5000/kubectl-tele:v1"},
		{name: "own tag", from: "a.io/x:v1", to: "localhost:5000/tele:v2", wantDst: "localhost:5000/tele:v2"},
		{name: "no --to", wantErr: "give --to REGISTRY/REPO"},
		{name: "digest --to", to: "ghcr.io/x@sha256:" + strings.Repeat("a", 64), wantErr: "names a digest"},
		{name: "bad --to", to: "ghcr.io/X/Y", wantErr: `--to "ghcr.io/X/Y"`},
		{name: "bad --from", from: "a.io/x:bad tag", to: "b.io/y", wantErr: `--from "a.io/x:bad tag"`},
		{name: "digest --from, no tag", from: "a.io/x@sha256:" + strings.Repeat("b", 64), to: "b.io/y", wantErr: "has no tag to keep: give --to a tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &ImageCopyOptions{From: tt.from, To: tt.to}
			o.Complete()
			err := o.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || o.dst.String() != tt.wantDst {
				t.Errorf("got %s, %v; want %s", o.dst, err, tt.wantDst)
			}
		})
	}
}

// Credentials come from $DOCKER_CONFIG, as docker login writes them.
func TestImageCopyDockerConfig(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "me" || p != "secret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	run := func() error {
		o := &ImageCopyOptions{Streams: genericiooptions.NewTestIOStreamsDiscard(), From: host + "/src/tele:v1", To: host + "/dst/tele"}
		o.Complete()
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		return o.Run(context.Background())
	}
	if err := run(); err == nil || !strings.Contains(err.Error(), "read image "+host+"/src/tele:v1") {
		t.Fatalf("without credentials: got %v, want a read error naming the image", err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("me:secret"))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(mustRef(t, host+"/src/tele:v1"), img, remote.WithAuth(&authn.Basic{Username: "me", Password: "secret"})); err != nil {
		t.Fatal(err)
	}
	if err := run(); err != nil {
		t.Fatalf("with credentials in $DOCKER_CONFIG: %v", err)
	}
}
