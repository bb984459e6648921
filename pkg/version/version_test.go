package version

import (
	"strings"
	"testing"
)

func TestImageIn(t *testing.T) {
	tests := []struct {
		registry, want, wantErr string
	}{
		{registry: "ghcr.io/my-org", want: "ghcr.io/my-org/kubectl-tele:" + Version},
		{registry: "localhost:5000", want: "localhost:5000/kubectl-tele:" + Version},
		{registry: "registry.lan:5000/a/b/", want: "registry.lan:5000/a/b/kubectl-tele:" + Version},
		{registry: "", wantErr: "registry is empty"},
		{registry: "http://localhost:5000", wantErr: "without a scheme"},
		{registry: "ghcr.io/x:v1", wantErr: "without a tag or digest"},
		{registry: "ghcr.io/x@sha256:" + strings.Repeat("a", 64), wantErr: "without a tag or digest"},
		{registry: "ghcr.io/My-Org", wantErr: "in lower case"},
		{registry: "ghcr.io//x", wantErr: "empty path element"},
	}
	for _, tt := range tests {
		t.Run(tt.registry, func(t *testing.T) {
			got, err := ImageIn(tt.registry)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "like ghcr.io/my-org") {
					t.Fatalf("got %q, %v; want an error containing %q and an example", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
