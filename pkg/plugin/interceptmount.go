package plugin

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kubectl-tele/kubectl-tele/pkg/mount"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// addMountFlag binds --mount, of intercept and wiretap.
func (o *InterceptOptions) addMountFlag(f *pflag.FlagSet) {
	f.StringVar(&o.Mount, "mount", "", "put the container's volumes (configMap, secret, downwardAPI, projected, the ServiceAccount token) under this new or empty folder, at their mount paths, kept current while the intercept lasts")
}

// validateMount checks --mount's folder before anything is made: the
// daemon, which keeps the folder, checks it again.
func (o *InterceptOptions) validateMount() error {
	if o.Mount == "" {
		return nil
	}
	dir, err := mount.Abs(o.Mount)
	if err != nil {
		return usagef("--mount: %w", err)
	}
	if err := mount.CheckDir(dir); err != nil {
		return usageError{err}
	}
	o.mountDir = dir
	return nil
}

func (o *InterceptOptions) mountRequest() *teleproto.MountRequest {
	if o.mountDir == "" {
		return nil
	}
	return &teleproto.MountRequest{Dir: o.mountDir}
}

// reportMount says which volumes are under the --mount folder, and names
// each one that is not, with why, on standard error.
func (o *InterceptOptions) reportMount(ctx context.Context, name string) {
	if o.mountDir == "" {
		return
	}
	st, err := o.ctl.Status(ctx)
	if err != nil {
		return
	}
	for _, m := range st.GetMounts() {
		if m.GetIntercept() != name {
			continue
		}
		for _, line := range mountLines(m) {
			fmt.Fprintln(o.Streams.ErrOut, line)
		}
	}
}

// mountLines describe a --mount folder: the volumes under it, then a
// warning for each one that is not.
func mountLines(m *teleproto.MountStatus) []string {
	var ok []string
	var lines []string
	for _, v := range m.GetVolumes() {
		if v.GetNotProvided() == "" {
			ok = append(ok, fmt.Sprintf("%s (%s %s)", v.GetPath(), v.GetKind(), v.GetName()))
			continue
		}
		lines = append(lines, fmt.Sprintf("warning: volume %s (%s) at %s: not mounted: %s", v.GetName(), v.GetKind(), v.GetPath(), v.GetNotProvided()))
	}
	head := fmt.Sprintf("  volumes of pod %s under %s: ", m.GetPod(), m.GetDir())
	if len(ok) == 0 {
		head += "none"
	} else {
		head += strings.Join(ok, ", ")
	}
	return append([]string{head}, lines...)
}
