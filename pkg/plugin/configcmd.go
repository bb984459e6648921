package plugin

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-tele/kubectl-tele/pkg/net/device"
	"github.com/kubectl-tele/kubectl-tele/pkg/plugin/config"
)

// NewCmdConfig builds kubectl tele config and its subcommands.
func NewCmdConfig(streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the config file's settings",
		Long: `The config file sets once what connect's flags would otherwise say every time.
It is $KUBECTL_TELE_CONFIG if that is set, else kubectl-tele/config.yaml in
$XDG_CONFIG_HOME or the user config directory (~/.config on Linux). Every field
is optional; a field this build does not know is an error. A flag given to
connect wins over the file.

  # ~/.config/kubectl-tele/config.yaml
  registry: ghcr.io/my-org          # or managerImage: a full reference
  imagePullSecrets: [regcred]
  neverProxy: [10.0.0.0/8]
  alsoProxy: [192.168.50.0/24]
  managerIdleTimeout: 30m
  deviceAddr: 100.127.255.254       # when a fake-IP proxy has 198.18.0.0/15
  dnsNamespaces: [staging, shared]  # NAME.NS resolves for these too`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(NewCmdConfigView(streams))
	return cmd
}

// ConfigViewOptions holds the flags of kubectl tele config view.
type ConfigViewOptions struct {
	Streams genericiooptions.IOStreams
	Output  string

	config *config.Config
}

// NewCmdConfigView builds kubectl tele config view.
func NewCmdConfigView(streams genericiooptions.IOStreams) *cobra.Command {
	o := &ConfigViewOptions{Streams: streams}
	cmd := &cobra.Command{
		Use:   "view",
		Short: "Show each setting connect uses when no flag is given, and where it comes from",
		Example: `  kubectl tele config view
  kubectl tele config view -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json or yaml (default: a table)")
	return cmd
}

// Complete reads the config file.
func (o *ConfigViewOptions) Complete() error {
	var err error
	o.config, err = config.LoadDefault()
	return err
}

// Validate rejects an unknown output format.
func (o *ConfigViewOptions) Validate() error {
	if o.Output != "" && o.Output != "json" && o.Output != "yaml" {
		return usagef("--output %q: use json or yaml, or leave it out for a table", o.Output)
	}
	return nil
}

// configView is config view's output for scripts.
type configView struct {
	ConfigFile configFileView `json:"configFile"`
	Values     []configValue  `json:"values"`
}

type configFileView struct {
	Path   string `json:"path"`
	Source string `json:"source"` // "$KUBECTL_TELE_CONFIG" or "default"
	Found  bool   `json:"found"`
}

// configValue is one setting: Value is a string or a list of strings; Source
// is "default" or the config file's path.
type configValue struct {
	Name   string `json:"name"`
	Value  any    `json:"value"`
	Source string `json:"source"`
}

// view says what each setting is and where it comes from.
func (o *ConfigViewOptions) view() (*configView, error) {
	c := o.config
	from := func(set bool) string {
		if set {
			return c.Path
		}
		return sourceDefault
	}
	list := func(name string, v []string) configValue {
		if v == nil {
			v = []string{}
		}
		return configValue{name, v, from(len(v) > 0)}
	}
	image, imageSource, err := imageChoice{FileRegistry: c.Registry, FileImage: c.ManagerImage, File: c.Path}.resolve()
	if err != nil {
		return nil, err
	}
	idle := defaultIdleTimeout
	if c.IdleTimeout != 0 {
		idle = c.IdleTimeout
	}
	return &configView{
		ConfigFile: configFileView{Path: c.Path, Source: c.Source(), Found: c.Found},
		Values: []configValue{
			{"registry", c.Registry, from(c.Registry != "")},
			{"managerImage", image, imageSource},
			list("imagePullSecrets", c.ImagePullSecrets),
			list("neverProxy", c.NeverProxy),
			list("alsoProxy", c.AlsoProxy),
			{"managerIdleTimeout", idle.String(), from(c.IdleTimeout != 0)},
			{"deviceAddr", deviceAddrOr(c.DeviceAddr), from(c.DeviceAddr != "")},
			list("dnsNamespaces", c.DNSNamespaces),
		},
	}, nil
}

// Run prints the settings.
func (o *ConfigViewOptions) Run(_ context.Context) error {
	v, err := o.view()
	if err != nil {
		return err
	}
	if done, err := printStructured(o.Streams.Out, o.Output, v); done {
		return err
	}
	w := printers.GetNewTabWriter(o.Streams.Out)
	defer w.Flush()
	file := v.ConfigFile.Path
	if !v.ConfigFile.Found {
		file += " (not found)"
	}
	fmt.Fprintf(w, "NAME\tVALUE\tSOURCE\n")
	fmt.Fprintf(w, "configFile\t%s\t%s\n", file, v.ConfigFile.Source)
	for _, val := range v.Values {
		s, _ := val.Value.(string)
		if l, ok := val.Value.([]string); ok {
			s = strings.Join(l, ",")
		}
		if s == "" {
			s = "<none>"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", val.Name, s, val.Source)
	}
	return nil
}

// deviceAddrOr is the device address the file sets, or the default.
func deviceAddrOr(s string) string {
	if s != "" {
		return s
	}
	return device.DefaultAddr.Addr().String()
}
