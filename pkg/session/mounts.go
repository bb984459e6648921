package session

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-tele/kubectl-tele/pkg/mount"
	"github.com/kubectl-tele/kubectl-tele/pkg/target"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// The daemon keeps the --mount folders, not the intercept command: they
// stay current after intercept returns, for as long as the intercept
// lasts, with the user's own credentials (the daemon's client); the
// manager and agents are not involved.

// startMount starts the --mount of intercept req in dir: the volumes of
// one running pod of its target, chosen as --env-file chooses it.
func (d *Daemon) startMount(ctx context.Context, req *teleproto.CreateInterceptRequest, dir string) (*mount.Mount, error) {
	if !filepath.IsAbs(dir) {
		return nil, status.Errorf(codes.InvalidArgument, "--mount %s: not an absolute path", dir)
	}
	dir = filepath.Clean(dir)
	name := req.GetName()
	if name == "" {
		name = req.GetWorkloadName()
	}
	d.mu.Lock()
	for other, m := range d.mounts {
		od := m.Status().Dir
		// The same intercept's too: a second intercept of its name fails,
		// and its mount's cleanup would empty the first one's folder.
		if od == dir || strings.HasPrefix(dir, od+string(filepath.Separator)) || strings.HasPrefix(od, dir+string(filepath.Separator)) {
			d.mu.Unlock()
			return nil, status.Errorf(codes.FailedPrecondition, "--mount %s: intercept %s mounts %s: give another folder", dir, other, od)
		}
	}
	d.mu.Unlock()
	w := &target.Workload{Kind: req.GetWorkloadKind(), Name: req.GetWorkloadName(), Namespace: d.cfg.Namespace}
	if sel := req.GetTarget().GetSelector(); sel != nil {
		s, err := sel.Selector()
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "--mount: %v", err)
		}
		w.Selector = s
	} else if pod := req.GetTarget().GetPodName(); pod != "" {
		w.Kind, w.Name = "Pod", pod
	}
	if w.Kind != "Pod" && w.Selector == nil {
		return nil, status.Error(codes.InvalidArgument, "--mount: the intercept names no pods")
	}
	if err := mount.Record(d.cfg.Paths.MountRecords(), dir); err != nil {
		return nil, err
	}
	m, err := mount.Start(ctx, mount.Config{
		Client: d.cfg.Client, Namespace: d.cfg.Namespace, Container: req.GetContainer(), Dir: dir, Intercept: name,
		PickPod: func(ctx context.Context) (*corev1.Pod, error) { return target.RunningPod(ctx, d.cfg.Client, w) },
		Log:     d.log.With("part", "mount"),
	})
	if err != nil {
		mount.Unrecord(d.cfg.Paths.MountRecords(), dir)
		return nil, fmt.Errorf("--mount %s: %w", dir, err)
	}
	return m, nil
}

// keepMount makes m the --mount of intercept name, ending the one it had.
func (d *Daemon) keepMount(name string, m *mount.Mount) {
	d.mu.Lock()
	old := d.mounts[name]
	d.mounts[name] = m
	d.mu.Unlock()
	if old != nil && old != m {
		d.closeMount(old)
	}
}

// endMount ends intercept name's --mount, if it has one: its folder is
// emptied (and removed, if the daemon made it).
func (d *Daemon) endMount(name string) {
	d.mu.Lock()
	m := d.mounts[name]
	delete(d.mounts, name)
	d.mu.Unlock()
	if m != nil {
		d.closeMount(m)
	}
}

func (d *Daemon) closeMount(m *mount.Mount) {
	dir := m.Status().Dir
	if err := m.Close(); err != nil {
		d.log.Warn("mount: could not empty the folder", "dir", dir, "err", err)
		return
	}
	mount.Unrecord(d.cfg.Paths.MountRecords(), dir)
}

// endMounts ends every --mount: the session is over.
func (d *Daemon) endMounts() {
	d.mu.Lock()
	names := make([]string, 0, len(d.mounts))
	for name := range d.mounts {
		names = append(names, name)
	}
	d.mu.Unlock()
	for _, name := range names {
		d.endMount(name)
	}
}

// cleanStaleMounts empties the --mount folders a daemon that died left.
func (d *Daemon) cleanStaleMounts() {
	cleared, err := mount.CleanStale(d.cfg.Paths.MountRecords())
	for _, dir := range cleared {
		d.log.Info("mount: emptied the folder an earlier session left", "dir", dir)
	}
	if err != nil {
		d.log.Warn("mount: folders an earlier session left", "err", err)
	}
}

// mountStatuses are the --mount folders as they are now, by intercept.
func (d *Daemon) mountStatuses() []*teleproto.MountStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*teleproto.MountStatus, 0, len(d.mounts))
	for name, m := range d.mounts {
		out = append(out, MountStatusOf(name, m.Status()))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetIntercept() < out[j].GetIntercept() })
	return out
}

// MountStatusOf puts a mount's status on the wire.
func MountStatusOf(intercept string, s mount.Status) *teleproto.MountStatus {
	ms := &teleproto.MountStatus{Intercept: intercept, Dir: s.Dir, Pod: s.Pod}
	for _, v := range s.Volumes {
		ms.Volumes = append(ms.Volumes, &teleproto.MountedVolume{Name: v.Name, Kind: v.Kind, Path: v.Path, NotProvided: v.Why})
	}
	return ms
}
