// Package config reads the user's kubectl-tele config file: what connect's
// flags would otherwise say on every command line (the registry the images
// come from, pull secrets, routes, the manager's idle timeout). The file is
// parsed strictly, so a misspelt field is an error rather than a setting that
// silently does nothing. Flags win over the file; the plugin applies that.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-tele/kubectl-tele/pkg/net/device"
	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

// EnvPath names the environment variable that, when set, is the config file.
const EnvPath = "KUBECTL_TELE_CONFIG"

// MinIdleTimeout is the shortest manager idle timeout connect accepts: a
// shorter one lets the manager exit between a session's reconnects.
const MinIdleTimeout = 5 * time.Second

// File is the config file's content. Every field is optional.
type File struct {
	// Registry (HOST[:PORT][/PATH]) holds this build's image as
	// REGISTRY/kubectl-tele:VERSION (kubectl tele image copy puts it there).
	Registry string `json:"registry,omitempty"`
	// ManagerImage is a full image reference for the manager and the agents.
	// It and Registry are two ways to say the same thing: give one.
	ManagerImage string `json:"managerImage,omitempty"`
	// ImagePullSecrets name Secrets in the namespace to pull the image with.
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`
	// NeverProxy and AlsoProxy are CIDRs kept out of, or added to, the routes
	// into the cluster.
	NeverProxy []string `json:"neverProxy,omitempty"`
	AlsoProxy  []string `json:"alsoProxy,omitempty"`
	// ManagerIdleTimeout is a Go duration (10m, 1h30m).
	ManagerIdleTimeout string `json:"managerIdleTimeout,omitempty"`
	// DeviceAddr is the laptop's own address on the TUN device, when the
	// default (198.18.0.1) is taken, e.g. by a fake-IP proxy.
	DeviceAddr string `json:"deviceAddr,omitempty"`
	// DNSNamespaces are namespaces whose names resolve as NAME.NS on
	// split-DNS laptops (systemd-resolved, macOS) when the user may not
	// list namespaces; the connected one, default and kube-system always do.
	DNSNamespaces []string `json:"dnsNamespaces,omitempty"`
}

// Config is a config file as read.
type Config struct {
	File
	// Path is the file that was read, or would have been.
	Path string
	// FromEnv says Path came from $KUBECTL_TELE_CONFIG.
	FromEnv bool
	// Found says the file exists; when it does not, File is empty.
	Found bool
	// IdleTimeout is ManagerIdleTimeout parsed; 0 when it is not set.
	IdleTimeout time.Duration
}

// Source names where the file's path came from, for people: the variable or
// "default".
func (c *Config) Source() string {
	if c.FromEnv {
		return "$" + EnvPath
	}
	return "default"
}

// DefaultPath is $KUBECTL_TELE_CONFIG if it is set, else
// kubectl-tele/config.yaml in $XDG_CONFIG_HOME when that is an absolute path
// (on macOS too, where os.UserConfigDir would not look), else in
// os.UserConfigDir.
func DefaultPath() (path string, fromEnv bool, err error) {
	if p := os.Getenv(EnvPath); p != "" {
		return p, true, nil
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(dir) {
		if dir, err = os.UserConfigDir(); err != nil {
			return "", false, fmt.Errorf("find the config directory: %w (set $%s to the config file's path)", err, EnvPath)
		}
	}
	return filepath.Join(dir, "kubectl-tele", "config.yaml"), false, nil
}

// LoadDefault reads the file DefaultPath names.
func LoadDefault() (*Config, error) {
	path, fromEnv, err := DefaultPath()
	if err != nil {
		return nil, err
	}
	c, err := Load(path)
	if c != nil {
		c.FromEnv = fromEnv
	}
	return c, err
}

// Load reads and checks the config file at path. A file that does not exist
// is an empty config; one that cannot be parsed, has a field this build does
// not know or a value that is not valid is an error naming the file and the
// field.
func Load(path string) (*Config, error) {
	c := &Config{Path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config file %s: %w", path, err)
	}
	c.Found = true
	if c.File, err = Parse(b); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if c.ManagerIdleTimeout != "" {
		c.IdleTimeout, _ = time.ParseDuration(c.ManagerIdleTimeout) // checked by Parse
	}
	return c, nil
}

// fieldNames lists File's fields as written in the file.
func fieldNames() []string {
	var out []string
	t := reflect.TypeFor[File]()
	for i := range t.NumField() {
		out = append(out, strings.Split(t.Field(i).Tag.Get("json"), ",")[0])
	}
	return out
}

// Parse decodes and checks a config file's content.
func Parse(b []byte) (File, error) {
	var f File
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return f, fmt.Errorf("%w: the file is YAML with the fields %s", err, strings.Join(fieldNames(), ", "))
	}
	// encoding/json matches keys without regard to case; a field is only
	// known when it is spelt exactly, as in kubectl's strict decoding.
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(j, &keys); err != nil {
		return f, decodeError(err)
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if !slices.Contains(fieldNames(), k) {
			return f, fmt.Errorf("unknown field %q: check its spelling or remove it (the fields are %s)", k, strings.Join(fieldNames(), ", "))
		}
	}
	if err := json.Unmarshal(j, &f); err != nil {
		return File{}, decodeError(err)
	}
	return f, f.check()
}

// decodeError turns encoding/json's error into one that names the field and
// says what to write.
func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := "a string"
		if te.Type.Kind() == reflect.Slice {
			want = "a list of strings"
		}
		field := te.Field
		if field == "managerIdleTimeout" {
			want = "a duration in quotes, like \"10m\""
		}
		if field == "" {
			return fmt.Errorf("the file must be a mapping of fields (%s), not a %s", strings.Join(fieldNames(), ", "), te.Value)
		}
		return fmt.Errorf("field %s: got a %s, want %s", field, te.Value, want)
	}
	return err
}

// check rejects values connect could not use.
func (f File) check() error {
	if f.Registry != "" && f.ManagerImage != "" {
		return errors.New("both registry and managerImage are set: remove managerImage to use REGISTRY/kubectl-tele:VERSION, or remove registry to use the full reference in managerImage")
	}
	if f.Registry != "" {
		if _, err := version.ImageIn(f.Registry); err != nil {
			return fmt.Errorf("field registry: %w", err)
		}
	}
	if f.ManagerImage != "" {
		if _, err := name.ParseReference(f.ManagerImage); err != nil {
			return fmt.Errorf("field managerImage %q: %w: give a full image reference (like ghcr.io/my-org/kubectl-tele:v1.2.3)", f.ManagerImage, err)
		}
	}
	for _, l := range []struct {
		field string
		cidrs []string
	}{{"neverProxy", f.NeverProxy}, {"alsoProxy", f.AlsoProxy}} {
		for i, s := range l.cidrs {
			if _, err := netip.ParsePrefix(strings.TrimSpace(s)); err != nil {
				return fmt.Errorf("field %s[%d] %q is not a CIDR: write it like 10.0.0.0/16", l.field, i, s)
			}
		}
	}
	for i, s := range f.DNSNamespaces {
		if errs := validation.IsDNS1123Label(s); len(errs) > 0 {
			return fmt.Errorf("field dnsNamespaces[%d] %q is not a namespace name: %s", i, s, strings.Join(errs, "; "))
		}
	}
	for i, s := range f.ImagePullSecrets {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("field imagePullSecrets[%d] is empty: give a Secret's name or remove the entry", i)
		}
	}
	if f.DeviceAddr != "" {
		if _, err := device.ParseAddr(f.DeviceAddr); err != nil {
			return fmt.Errorf("field deviceAddr: %w", err)
		}
	}
	if f.ManagerIdleTimeout != "" {
		d, err := time.ParseDuration(f.ManagerIdleTimeout)
		if err != nil {
			return fmt.Errorf("field managerIdleTimeout %q is not a duration: write it like 10m or 1h30m", f.ManagerIdleTimeout)
		}
		if d < MinIdleTimeout {
			return fmt.Errorf("field managerIdleTimeout %s is too short: give at least %s", d, MinIdleTimeout)
		}
	}
	return nil
}
