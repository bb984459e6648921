package plugin

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/plugin/config"
	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

// The config file fills what the command line leaves out; a flag, even one
// set to its default, wins.
func TestConnectApplyConfig(t *testing.T) {
	const path = "/cfg/config.yaml"
	file := config.File{
		Registry: "ghcr.io/my-org", ImagePullSecrets: []string{"regcred"},
		NeverProxy: []string{"10.0.0.0/8"}, AlsoProxy: []string{"192.168.0.0/16"}, ManagerIdleTimeout: "1h",
	}
	type want struct {
		image       string
		secrets     []string
		never, also []string
		idle        time.Duration
		idleFrom    string
	}
	fromFile := want{"ghcr.io/my-org/kubectl-tele:" + version.Version, []string{"regcred"}, []string{"10.0.0.0/8"}, []string{"192.168.0.0/16"}, time.Hour, "managerIdleTimeout in " + path}
	tests := []struct {
		name    string
		file    config.File
		args    []string
		want    want
		wantErr string
	}{
		{name: "no file, no flags", want: want{image: version.Image(), idle: defaultIdleTimeout}},
		{name: "file only", file: file, want: fromFile},
		{name: "flags win", file: file,
			args: []string{"--image-pull-secret=a,b", "--never-proxy=10.1.0.0/16", "--also-proxy=10.2.0.0/16", "--manager-idle-timeout=10m", "--manager-image=localhost:5000/tele:x"},
			want: want{"localhost:5000/tele:x", []string{"a", "b"}, []string{"10.1.0.0/16"}, []string{"10.2.0.0/16"}, 10 * time.Minute, "--manager-idle-timeout"}},
		{name: "registry flag beats file registry", file: file, args: []string{"--registry=localhost:5000"},
			want: want{"localhost:5000/kubectl-tele:" + version.Version, fromFile.secrets, fromFile.never, fromFile.also, time.Hour, fromFile.idleFrom}},
		{name: "file image, no flag", file: config.File{ManagerImage: "ghcr.io/x/tele:v1"}, want: want{image: "ghcr.io/x/tele:v1", idle: defaultIdleTimeout}},
		{name: "both flags", args: []string{"--registry=ghcr.io/x", "--manager-image=ghcr.io/x/tele:v1"}, wantErr: "--registry and --manager-image both name the image"},
		{name: "bad registry flag", args: []string{"--registry=ghcr.io/X"}, wantErr: "--registry: registry \"ghcr.io/X\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &ConnectOptions{}
			fs := pflag.NewFlagSet("connect", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c := &config.Config{Path: path, Found: true, File: tt.file}
			if tt.file.ManagerIdleTimeout != "" {
				c.IdleTimeout, _ = time.ParseDuration(tt.file.ManagerIdleTimeout)
			}
			err := o.applyConfig(fs, c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{o.ManagerImage, o.ImagePullSecrets, o.NeverProxy, o.AlsoProxy, o.IdleTimeout, o.idleTimeoutFrom}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if err := o.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestIdleTimeoutWarning(t *testing.T) {
	running := func(idle time.Duration, created bool) *managerclient.Manager {
		return &managerclient.Manager{Namespace: "team", Pod: "kubectl-tele-manager-x", IdleTimeout: idle,
			Action: managerclient.ActionUse, Created: created}
	}
	const flag = "--manager-idle-timeout"
	tests := []struct {
		name string
		from string
		want time.Duration
		m    *managerclient.Manager
		// wantMsg are parts of the warning; nil for none.
		wantMsg []string
	}{
		{name: "not asked for", want: defaultIdleTimeout, m: running(time.Hour, false)},
		{name: "same as the running one", from: flag, want: time.Hour, m: running(time.Hour, false)},
		{name: "started by this call", from: flag, want: time.Hour, m: running(time.Hour, true)},
		{name: "started by this call, Job silent", from: flag, want: time.Hour, m: running(0, true)},
		{name: "running one differs", from: flag, want: time.Hour, m: running(10*time.Minute, false),
			wantMsg: []string{"warning: --manager-idle-timeout 1h0m0s is not applied", "namespace team keeps its own idle timeout (10m0s)",
				"kubectl tele uninstall -n team", "then connect again"}},
		{name: "from the config file", from: "managerIdleTimeout in /cfg/config.yaml", want: 30 * time.Minute, m: running(10*time.Minute, false),
			wantMsg: []string{"managerIdleTimeout in /cfg/config.yaml 30m0s is not applied", "(10m0s)"}},
		{name: "running one's unknown", from: flag, want: time.Hour, m: running(0, false),
			wantMsg: []string{"keeps its own idle timeout;", "kubectl tele uninstall -n team"}},
		{name: "another laptop started it first", from: flag, want: time.Hour, m: running(5*time.Minute, true),
			wantMsg: []string{"keeps its own idle timeout (5m0s)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := idleTimeoutWarning(tt.from, tt.want, tt.m)
			if tt.wantMsg == nil {
				if got != "" {
					t.Errorf("warning %q, want none", got)
				}
				return
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(got, w) {
					t.Errorf("warning %q does not contain %q", got, w)
				}
			}
		})
	}
}
