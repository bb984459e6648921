// Command gendocs writes the Markdown reference of kubectl tele, one file per
// command, from the cobra commands themselves, and the packages' import graph
// in docs/how-it-works.md: `make docs` runs it, and its tests fail when docs/
// no longer matches the commands and packages, or when a command example in
// README.md or a docs page names a command or flag that does not exist.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-tele/kubectl-tele/pkg/plugin"
	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

func main() {
	dir := flag.String("dir", "docs", "write the Markdown files here")
	flag.Parse()
	if err := generate(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
	if err := writeGraph(filepath.Join(*dir, graphPage)); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

// generate replaces the command reference in dir with one made now.
func generate(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Remove pages of commands that no longer exist; leave other files alone.
	old, err := filepath.Glob(filepath.Join(dir, "kubectl_tele*.md"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	root := plugin.NewRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard})
	stabilize(root)
	// Hidden commands (daemon, helper, manager, agent) are skipped by cobra.
	return doc.GenMarkdownTree(root, dir)
}

// stabilize makes the pages the same on every machine, every day and every
// build: no "Auto generated on DATE" footer, no default that names this
// user's home or this build's version.
func stabilize(root *cobra.Command) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.DisableAutoGenTag = true
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if f.DefValue == version.Image() {
				f.DefValue = version.ImageRepo + ":<version>"
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if f := root.PersistentFlags().Lookup("cache-dir"); f != nil {
		f.DefValue = "$HOME/.kube/cache" // as kubectl's own reference prints it
	}
}
