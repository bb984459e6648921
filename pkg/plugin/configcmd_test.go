package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-tele/kubectl-tele/pkg/plugin/config"
	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tele.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.EnvPath, path)
	return path
}

func TestConfigView(t *testing.T) {
	path := writeConfig(t, "registry: ghcr.io/my-org\nimagePullSecrets: [regcred, other]\nmanagerIdleTimeout: 30m\n")
	want := configView{
		ConfigFile: configFileView{Path: path, Source: "$KUBECTL_TELE_CONFIG", Found: true},
		Values: []configValue{
			{"registry", "ghcr.io/my-org", path},
			{"managerImage", "ghcr.io/my-org/kubectl-tele:" + version.Version, path},
			{"imagePullSecrets", []any{"regcred", "other"}, path},
			{"neverProxy", []any{}, "default"},
			{"alsoProxy", []any{}, "default"},
			{"managerIdleTimeout", "30m0s", path},
			{"deviceAddr", "198.18.0.1", "default"},
			{"dnsNamespaces", []any{}, "default"},
		},
	}
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			out, _, err := runRoot(t, "config", "view", "-o", format)
			if err != nil {
				t.Fatal(err)
			}
			var got configView
			if format == "json" {
				err = json.Unmarshal([]byte(out), &got)
			} else {
				err = yaml.Unmarshal([]byte(out), &got)
			}
			if err != nil {
				t.Fatalf("%v in:\n%s", err, out)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
	t.Run("table", func(t *testing.T) {
		out, _, err := runRoot(t, "config", "view")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		wantRows := [][]string{
			{"NAME", "VALUE", "SOURCE"},
			{"configFile", path, "$KUBECTL_TELE_CONFIG"},
			{"registry", "ghcr.io/my-org", path},
			{"managerImage", "ghcr.io/my-org/kubectl-tele:" + version.Version, path},
			{"imagePullSecrets", "regcred,other", path},
			{"neverProxy", "<none>", "default"},
			{"alsoProxy", "<none>", "default"},
			{"managerIdleTimeout", "30m0s", path},
			{"deviceAddr", "198.18.0.1", "default"},
			{"dnsNamespaces", "<none>", "default"},
		}
		if len(lines) != len(wantRows) {
			t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(wantRows), out)
		}
		for i, row := range wantRows {
			if got := strings.Fields(lines[i]); !reflect.DeepEqual(got, row) {
				t.Errorf("line %d: got %q, want %q", i, got, row)
			}
		}
	})
}

func TestConfigViewNoFile(t *testing.T) {
	t.Setenv(config.EnvPath, "")
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	out, _, err := runRoot(t, "config", "view")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		filepath.Join(dir, "kubectl-tele", "config.yaml") + " (not found)",
		"managerImage " + version.Image() + " default",
		"managerIdleTimeout 10m0s default",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), w) {
			t.Errorf("output does not contain %q:\n%s", w, out)
		}
	}
}

func TestConfigViewErrors(t *testing.T) {
	path := writeConfig(t, "registy: ghcr.io/my-org\n")
	if _, _, err := runRoot(t, "config", "view"); err == nil || !strings.Contains(err.Error(), "config file "+path+`: unknown field "registy"`) {
		t.Errorf("got %v, want the unknown field named with the file", err)
	}
	writeConfig(t, "")
	if _, _, err := runRoot(t, "config", "view", "-o", "wide"); err == nil || !strings.Contains(err.Error(), "use json or yaml") {
		t.Errorf("got %v, want a usage error", err)
	}
}
