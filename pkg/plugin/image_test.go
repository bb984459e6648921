package plugin

import (
	"errors"
	"strings"
	"testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

func TestImageChoice(t *testing.T) {
	const file = "/home/u/.config/kubectl-tele/config.yaml"
	v := version.Version
	tests := []struct {
		name      string
		in        imageChoice
		want, src string
		wantErr   []string
		wantUsage bool
	}{
		{name: "nothing: this build's image", want: version.Image(), src: "default"},
		{name: "registry flag", in: imageChoice{FlagRegistry: "ghcr.io/my-org"}, want: "ghcr.io/my-org/kubectl-tele:" + v, src: "--registry"},
		{name: "registry with port, trailing slash", in: imageChoice{FlagRegistry: "localhost:5000/"}, want: "localhost:5000/kubectl-tele:" + v, src: "--registry"},
		{name: "registry host only", in: imageChoice{FlagRegistry: "registry.example.com"}, want: "registry.example.com/kubectl-tele:" + v, src: "--registry"},
		{name: "image flag", in: imageChoice{FlagImage: "ghcr.io/x/tele@sha256:" + strings.Repeat("a", 64)}, want: "ghcr.io/x/tele@sha256:" + strings.Repeat("a", 64), src: "--manager-image"},
		{name: "both flags", in: imageChoice{FlagRegistry: "ghcr.io/my-org", FlagImage: "ghcr.io/x/tele:v1"}, wantUsage: true,
			wantErr: []string{"--registry and --manager-image both name the image", "drop --manager-image to use ghcr.io/my-org/kubectl-tele:" + v, "or drop --registry to use ghcr.io/x/tele:v1"}},
		{name: "registry with scheme", in: imageChoice{FlagRegistry: "https://ghcr.io/x"}, wantUsage: true, wantErr: []string{"--registry: registry \"https://ghcr.io/x\"", "without a scheme"}},
		{name: "registry with tag", in: imageChoice{FlagRegistry: "ghcr.io/x:v1"}, wantUsage: true, wantErr: []string{"--registry", "without a tag or digest"}},
		{name: "registry upper case", in: imageChoice{FlagRegistry: "ghcr.io/MyOrg"}, wantUsage: true, wantErr: []string{"--registry", "lower case"}},
		{name: "registry empty path element", in: imageChoice{FlagRegistry: "ghcr.io//x"}, wantUsage: true, wantErr: []string{"--registry"}},
		{name: "bad image flag", in: imageChoice{FlagImage: "ghcr.io/x/tele:bad tag"}, wantUsage: true, wantErr: []string{`--manager-image "ghcr.io/x/tele:bad tag"`, "full image reference"}},
		{name: "file registry", in: imageChoice{FileRegistry: "ghcr.io/my-org", File: file}, want: "ghcr.io/my-org/kubectl-tele:" + v, src: file},
		{name: "file image", in: imageChoice{FileImage: "ghcr.io/x/tele:v1", File: file}, want: "ghcr.io/x/tele:v1", src: file},
		{name: "registry flag beats file image", in: imageChoice{FlagRegistry: "localhost:5000", FileImage: "ghcr.io/x/tele:v1", File: file}, want: "localhost:5000/kubectl-tele:" + v, src: "--registry"},
		{name: "image flag beats file registry", in: imageChoice{FlagImage: "ghcr.io/x/tele:v1", FileRegistry: "localhost:5000", File: file}, want: "ghcr.io/x/tele:v1", src: "--manager-image"},
		{name: "both in file", in: imageChoice{FileRegistry: "a.io", FileImage: "a.io/b:c", File: file}, wantErr: []string{"config file " + file, "both registry and managerImage"}},
		{name: "bad file registry", in: imageChoice{FileRegistry: "a.io/B", File: file}, wantErr: []string{"config file " + file + ": field registry"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, src, err := tt.in.resolve()
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("got %q from %s, want an error", got, src)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if errors.As(err, new(usageError)) != tt.wantUsage {
					t.Errorf("error %q: usage error %t, want %t", err, !tt.wantUsage, tt.wantUsage)
				}
				return
			}
			if err != nil || got != tt.want || src != tt.src {
				t.Errorf("got %q from %q, %v; want %q from %q", got, src, err, tt.want, tt.src)
			}
		})
	}
}
