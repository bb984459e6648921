package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		content string // "" with noFile: no file at all
		noFile  bool
		want    File
		wantD   time.Duration
		wantErr []string // substrings of the error, besides the file's path
	}{
		{name: "missing file", noFile: true},
		{name: "empty file", content: ""},
		{name: "comments only", content: "# nothing yet\n"},
		{
			name: "all fields",
			content: `registry: ghcr.io/my-org
imagePullSecrets: [regcred, other]
neverProxy:
  - 10.0.0.0/8
alsoProxy: ["192.168.50.0/24"]
managerIdleTimeout: 30m
`,
			want: File{
				Registry: "ghcr.io/my-org", ImagePullSecrets: []string{"regcred", "other"},
				NeverProxy: []string{"10.0.0.0/8"}, AlsoProxy: []string{"192.168.50.0/24"}, ManagerIdleTimeout: "30m",
			},
			wantD: 30 * time.Minute,
		},
		{name: "manager image", content: "managerImage: localhost:5000/tele:v1\n", want: File{ManagerImage: "localhost:5000/tele:v1"}},
		{name: "unknown field", content: "regsitry: ghcr.io/x\n", wantErr: []string{`unknown field "regsitry"`, "check its spelling", "registry, managerImage"}},
		{name: "wrong case is unknown", content: "Registry: ghcr.io/x\n", wantErr: []string{`unknown field "Registry"`}},
		{name: "list given a string", content: "imagePullSecrets: regcred\n", wantErr: []string{"field imagePullSecrets: got a string, want a list of strings"}},
		{name: "string given a list", content: "registry: [a, b]\n", wantErr: []string{"field registry: got a array, want a string"}},
		{name: "duration as number", content: "managerIdleTimeout: 10\n", wantErr: []string{"field managerIdleTimeout: got a number", `like "10m"`}},
		{name: "bad duration", content: "managerIdleTimeout: ten minutes\n", wantErr: []string{`field managerIdleTimeout "ten minutes" is not a duration`, "like 10m"}},
		{name: "short duration", content: "managerIdleTimeout: 1s\n", wantErr: []string{"managerIdleTimeout 1s is too short: give at least 5s"}},
		{name: "bad CIDR", content: "alsoProxy: [10.0.0.0/8, 10.1.0.0]\n", wantErr: []string{`field alsoProxy[1] "10.1.0.0" is not a CIDR`}},
		{name: "bad registry", content: "registry: https://ghcr.io/x\n", wantErr: []string{"field registry", "without a scheme"}},
		{name: "registry with tag", content: "registry: ghcr.io/x:v1\n", wantErr: []string{"field registry", "without a tag"}},
		{name: "bad image", content: "managerImage: Ghcr.io/UPPER:v1\n", wantErr: []string{"field managerImage", "full image reference"}},
		{name: "registry and image", content: "registry: ghcr.io/x\nmanagerImage: ghcr.io/x/y:v1\n", wantErr: []string{"both registry and managerImage", "remove"}},
		{name: "empty secret", content: "imagePullSecrets: ['']\n", wantErr: []string{"imagePullSecrets[0] is empty"}},
		{name: "not a mapping", content: "- a\n- b\n", wantErr: []string{"must be a mapping"}},
		{name: "duplicate field", content: "registry: a.io\nregistry: b.io\n", wantErr: []string{"registry"}},
		{name: "not YAML", content: "registry: [\n", wantErr: []string{"YAML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			if !tt.noFile {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c, err := Load(path)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("got %+v, want an error", c)
				}
				for _, w := range append([]string{"config file " + path + ": "}, tt.wantErr...) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.File, tt.want) || c.IdleTimeout != tt.wantD || c.Found == tt.noFile || c.Path != path {
				t.Errorf("got %+v, want %+v (idle %s, found %t)", *c, tt.want, tt.wantD, !tt.noFile)
			}
		})
	}
}

func TestDefaultPath(t *testing.T) {
	abs := t.TempDir()
	tests := []struct {
		name     string
		env, xdg string
		want     string // "" for os.UserConfigDir's
		fromEnv  bool
	}{
		{name: "variable wins", env: "/etc/tele.yaml", xdg: abs, want: "/etc/tele.yaml", fromEnv: true},
		{name: "XDG_CONFIG_HOME", xdg: abs, want: filepath.Join(abs, "kubectl-tele", "config.yaml")},
		{name: "relative XDG_CONFIG_HOME is ignored", xdg: "relative/dir"},
		{name: "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvPath, tt.env)
			t.Setenv("XDG_CONFIG_HOME", tt.xdg)
			want := tt.want
			if want == "" {
				dir, err := os.UserConfigDir()
				if err != nil {
					t.Skip("no user config dir here:", err)
				}
				want = filepath.Join(dir, "kubectl-tele", "config.yaml")
			}
			got, fromEnv, err := DefaultPath()
			if err != nil || got != want || fromEnv != tt.fromEnv {
				t.Errorf("got %q, %t, %v; want %q, %t", got, fromEnv, err, want, tt.fromEnv)
			}
		})
	}
}

func TestLoadDefaultFromEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tele.yaml")
	if err := os.WriteFile(path, []byte("registry: localhost:5000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvPath, path)
	c, err := LoadDefault()
	if err != nil || !c.Found || !c.FromEnv || c.Source() != "$KUBECTL_TELE_CONFIG" || c.Registry != "localhost:5000" {
		t.Errorf("got %+v, %v", c, err)
	}
}
