package mount

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-tele/kubectl-tele/pkg/target"
)

// Config is what a Mount needs.
type Config struct {
	// Client reads with the user's own credentials.
	Client    kubernetes.Interface
	Namespace string
	// PickPod chooses the pod whose volumes are mounted: at Start, and
	// again when that pod is gone (a rollout).
	PickPod func(ctx context.Context) (*corev1.Pod, error)
	// Container is the intercepted container ("": the pod's default).
	Container string
	// Dir is the absolute folder the volumes appear under.
	Dir string
	// Intercept names the intercept, in the marker and logs.
	Intercept string
	Log       *slog.Logger
}

// Status is what a mount provides now.
type Status struct {
	Dir, Pod string
	Volumes  []VolumeStatus
}

// VolumeStatus is one volume mount: provided when Why is "".
type VolumeStatus struct {
	Name, Kind, Path string
	Why              string
}

// Mount keeps an intercepted container's volumes under a folder while the
// intercept lasts. Close stops it and removes the folder's contents.
type Mount struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan struct{}
	// planned is the mounts (paths and volumes, in order) written last;
	// run's goroutine alone uses it.
	planned string

	mu     sync.Mutex
	status Status
}

// Start prepares cfg.Dir, chooses the pod and writes its volumes, then
// keeps them current until Close. ctx bounds the first write only.
func Start(ctx context.Context, cfg Config) (*Mount, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := prepare(cfg.Dir, cfg.Intercept); err != nil {
		return nil, err
	}
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m := &Mount{cfg: cfg, cancel: cancel, done: make(chan struct{}), status: Status{Dir: cfg.Dir}}
	first := make(chan error, 1)
	go func() {
		defer close(m.done)
		m.run(life, first)
	}()
	select {
	case err := <-first:
		if err != nil {
			return nil, errors.Join(err, m.Close())
		}
		return m, nil
	case <-ctx.Done():
		return nil, errors.Join(fmt.Errorf("mount the volumes in %s: %w", cfg.Dir, ctx.Err()), m.Close())
	}
}

// Status is what the mount provides now.
func (m *Mount) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.status
	s.Volumes = append([]VolumeStatus(nil), s.Volumes...)
	return s
}

// Close stops keeping the volumes current, waits for that, and removes
// what the mount wrote (and the folder, if it made it).
func (m *Mount) Close() error {
	m.cancel()
	<-m.done
	return Clear(m.cfg.Dir)
}

// run mounts the chosen pod's volumes until that pod is gone, then the
// next pod's, until ctx ends. The first outcome goes to first: an error
// there ends run, as Start fails.
func (m *Mount) run(ctx context.Context, first chan<- error) {
	started := false
	ready := func() {
		if !started {
			started = true
			first <- nil
		}
	}
	for ctx.Err() == nil {
		pod, err := m.cfg.PickPod(ctx)
		if err == nil {
			r := &podRun{m: m, pod: pod, kick: make(chan struct{}, 1), tokens: map[TokenSpec]*tokenState{}}
			err = r.run(ctx, ready)
		}
		switch {
		case !started:
			first <- err
			return
		case ctx.Err() != nil:
			return
		case errors.Is(err, errPodGone):
			m.cfg.Log.Info("mount: the pod is gone; mounting the next one's volumes", "intercept", m.cfg.Intercept, "pod", pod.Name)
			continue
		}
		m.cfg.Log.Warn("mount: the volumes are not kept current; trying again in 5 s", "intercept", m.cfg.Intercept, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}

// planKey says which volume is mounted where, in order.
func planKey(vols []Volume) string {
	var b strings.Builder
	for _, v := range vols {
		fmt.Fprintf(&b, "%q %q %q %q\n", v.Name, v.Kind, v.Path, v.SubPath)
	}
	return b.String()
}

// errPodGone ends a podRun whose pod was deleted.
var errPodGone = errors.New("the pod is gone")

// podRun keeps one pod's volumes current.
type podRun struct {
	m    *Mount
	pod  *corev1.Pod
	c    *corev1.Container
	vols []Volume
	skip []Skipped

	podWatch *objectWatch
	watches  map[Ref]*objectWatch
	tokens   map[TokenSpec]*tokenState
	// kick is signalled by every watch event.
	kick chan struct{}

	node     *corev1.Node
	nodeRead bool
	// written says which volumes were provided once: their files stay
	// (as the kubelet keeps a volume's) when their source goes away.
	written map[int]bool
}

// objectWatch is an informer on one object, by name.
type objectWatch struct {
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc
	mu     sync.Mutex
	err    error // why it cannot be read; the informer is stopped
}

func (w *objectWatch) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// tokenState is a ServiceAccount token and when to request it again.
type tokenState struct {
	token   string
	err     error
	refresh time.Time
}

// run keeps r's pod's volumes current until the pod is gone (errPodGone)
// or ctx ends; ready is called once they are first written.
func (r *podRun) run(ctx context.Context, ready func()) error {
	cfg := r.m.cfg
	var err error
	if r.c, err = target.FindContainer(r.pod, cfg.Container); err != nil {
		return err
	}
	r.vols, r.skip = Plan(r.pod, r.c)
	if planned := planKey(r.vols); planned != r.m.planned {
		if r.m.planned != "" {
			// The next pod mounts other volumes (its spec changed):
			// what the last one's wrote goes first, so that nothing
			// stays under DIR that this pod does not have (a Secret
			// volume taken out of the spec), and a subPath volume's
			// own folder, kept by the volume's index, is not read as
			// another's.
			if err := clearVolumes(cfg.Dir); err != nil {
				return err
			}
		}
		r.m.planned = planned
	}
	r.written = map[int]bool{}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	start := func(resource, name string, obj runtime.Object) *objectWatch {
		wctx, wcancel := context.WithCancel(ctx)
		w := r.watch(resource, name, obj, wcancel)
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.inf.RunWithContext(wctx)
		}()
		return w
	}
	r.podWatch = start("pods", r.pod.Name, &corev1.Pod{})
	r.watches = map[Ref]*objectWatch{}
	for _, v := range r.vols {
		refs, tokens, _ := v.Needs()
		for _, ref := range refs {
			if r.watches[ref] == nil {
				var obj runtime.Object = &corev1.ConfigMap{}
				if ref.Resource == "secrets" {
					obj = &corev1.Secret{}
				}
				r.watches[ref] = start(ref.Resource, ref.Name, obj)
			}
		}
		for _, t := range tokens {
			if r.tokens[t] == nil {
				r.tokens[t] = &tokenState{}
				r.requestToken(ctx, t)
			}
		}
	}
	if err := r.waitSynced(ctx); err != nil {
		return err
	}
	if err := r.write(); err != nil {
		return err
	}
	ready()
	for {
		next := r.nextRefresh()
		var timer <-chan time.Time
		stop := func() bool { return false }
		if !next.IsZero() {
			t := time.NewTimer(time.Until(next))
			timer, stop = t.C, t.Stop
		}
		select {
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-r.kick:
			stop()
		case <-timer:
			for spec, t := range r.tokens {
				if !t.refresh.IsZero() && !time.Now().Before(t.refresh) {
					r.requestToken(ctx, spec)
				}
			}
		}
		if err := r.write(); err != nil {
			return err
		}
	}
}

// watch makes the informer of one object: a list and watch of its
// resource with a field selector on its name, with the user's
// credentials. A Forbidden stops it, naming the verbs missing.
func (r *podRun) watch(resource, name string, obj runtime.Object, stop context.CancelFunc) *objectWatch {
	cfg := r.m.cfg
	lw := listWatch(cfg.Client, cfg.Namespace, resource, name)
	// The semantics wrapper: a fake clientset (tests) lists, where a real
	// one streams the list in a watch (WatchListClient).
	w := &objectWatch{inf: cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, cfg.Client), obj, cache.SharedIndexInformerOptions{}), cancel: stop}
	kick := func() {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	w.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { kick() },
		UpdateFunc: func(any, any) { kick() },
		DeleteFunc: func(any) { kick() },
	})
	_ = w.inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, rf *cache.Reflector, err error) {
		if !apierrors.IsForbidden(err) {
			cfg.Log.Debug("mount: watch", "resource", resource, "name", name, "err", err)
			return
		}
		w.mu.Lock()
		w.err = fmt.Errorf("needs list and watch on %s in namespace %s, to read %q with your credentials (deploy/user-role-mount.yaml grants it)", resource, cfg.Namespace, name)
		w.mu.Unlock()
		w.cancel()
		kick()
	})
	return w
}

// waitSynced waits until every watch has listed its object or failed.
func (r *podRun) waitSynced(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		synced := r.podWatch.inf.HasSynced() || r.podWatch.failed() != nil
		for _, w := range r.watches {
			synced = synced && (w.inf.HasSynced() || w.failed() != nil)
		}
		if synced {
			if err := r.podWatch.failed(); err != nil {
				return err
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.kick:
		case <-tick.C:
		}
	}
}

// requestToken asks for the pod's ServiceAccount token, bound to the pod,
// as the kubelet does, and sets when to ask again: at 80% of its life, as
// the kubelet's token manager does; a failure is retried in 10 s, and a
// Forbidden not at all.
func (r *podRun) requestToken(ctx context.Context, spec TokenSpec) {
	cfg := r.m.cfg
	sa := r.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &spec.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: r.pod.Name, UID: r.pod.UID},
	}}
	if spec.Audience != "" {
		req.Spec.Audiences = []string{spec.Audience}
	}
	t := r.tokens[spec]
	now := time.Now()
	tr, err := cfg.Client.CoreV1().ServiceAccounts(cfg.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	switch {
	case apierrors.IsForbidden(err):
		t.err, t.refresh = fmt.Errorf("needs create on serviceaccounts/token in namespace %s, for the token of ServiceAccount %q (deploy/user-role-mount.yaml grants it)", cfg.Namespace, sa), time.Time{}
	case err != nil:
		cfg.Log.Warn("mount: request a ServiceAccount token", "serviceAccount", sa, "err", err)
		if t.token == "" {
			t.err = fmt.Errorf("request a token of ServiceAccount %q: %w", sa, err)
		}
		t.refresh = now.Add(10 * time.Second)
	default:
		life := tr.Status.ExpirationTimestamp.Sub(now)
		t.token, t.err, t.refresh = tr.Status.Token, nil, now.Add(life*8/10)
	}
}

func (r *podRun) nextRefresh() time.Time {
	var next time.Time
	for _, t := range r.tokens {
		if !t.refresh.IsZero() && (next.IsZero() || t.refresh.Before(next)) {
			next = t.refresh
		}
	}
	return next
}

// inputs are the objects as the watches have them now.
func (r *podRun) inputs() (Inputs, error) {
	cfg := r.m.cfg
	obj, ok, _ := r.podWatch.inf.GetStore().GetByKey(cfg.Namespace + "/" + r.pod.Name)
	if !ok {
		return Inputs{}, errPodGone
	}
	pod := obj.(*corev1.Pod)
	if pod.UID != r.pod.UID || pod.DeletionTimestamp != nil {
		return Inputs{}, errPodGone
	}
	r.pod = pod
	in := Inputs{Pod: pod, Container: r.c, ConfigMaps: map[string]Read[*corev1.ConfigMap]{}, Secrets: map[string]Read[*corev1.Secret]{},
		Tokens: map[TokenSpec]Read[string]{}, Node: r.getNode}
	for ref, w := range r.watches {
		err := w.failed()
		var o any
		if err == nil {
			o, ok, _ = w.inf.GetStore().GetByKey(cfg.Namespace + "/" + ref.Name)
			if !ok {
				o = nil
			}
		}
		switch ref.Resource {
		case "configmaps":
			cm, _ := o.(*corev1.ConfigMap)
			in.ConfigMaps[ref.Name] = Read[*corev1.ConfigMap]{Obj: cm, Err: err}
		case "secrets":
			s, _ := o.(*corev1.Secret)
			in.Secrets[ref.Name] = Read[*corev1.Secret]{Obj: s, Err: err}
		}
	}
	for spec, t := range r.tokens {
		in.Tokens[spec] = Read[string]{Obj: t.token, Err: t.err}
	}
	return in, nil
}

func (r *podRun) getNode() *corev1.Node {
	if !r.nodeRead && r.pod.Spec.NodeName != "" {
		r.nodeRead = true
		n, err := r.m.cfg.Client.CoreV1().Nodes().Get(context.Background(), r.pod.Spec.NodeName, metav1.GetOptions{})
		if err == nil {
			r.node = n
		}
	}
	return r.node
}

// write brings every volume's files up to date, and the status.
func (r *podRun) write() error {
	cfg := r.m.cfg
	in, err := r.inputs()
	if err != nil {
		return err
	}
	var vs []VolumeStatus
	for i, v := range r.vols {
		st := VolumeStatus{Name: v.Name, Kind: v.Kind, Path: v.Path}
		files, err := v.Files(in)
		switch {
		case err != nil && r.written[i]:
			cfg.Log.Warn("mount: volume not updated, its files stay as they were", "intercept", cfg.Intercept, "volume", v.Name, "err", err)
		case err != nil:
			st.Why = err.Error()
		default:
			changed, werr := r.writeVolume(i, v, files)
			if werr != nil {
				// One volume's (a subPath symlink where the system
				// refuses symlinks, a full disk): named, the others go on.
				cfg.Log.Warn("mount: write a volume", "intercept", cfg.Intercept, "volume", v.Name, "err", werr)
				st.Why = fmt.Sprintf("could not be written under %s: %v", cfg.Dir, werr)
				break
			}
			r.written[i] = true
			if changed {
				cfg.Log.Info("mount: volume written", "intercept", cfg.Intercept, "volume", v.Name, "path", v.Path, "files", len(files))
			}
		}
		vs = append(vs, st)
	}
	for _, s := range r.skip {
		vs = append(vs, VolumeStatus{Name: s.Name, Kind: s.Kind, Path: s.Path, Why: s.Why})
	}
	r.m.mu.Lock()
	r.m.status = Status{Dir: cfg.Dir, Pod: r.pod.Name, Volumes: vs}
	r.m.mu.Unlock()
	return nil
}

// writeVolume writes volume i at its mount path; one mounted by subPath
// is written whole in DIR's own folder, and its mount path is a symlink
// to the file or folder in it.
func (r *podRun) writeVolume(i int, v Volume, files []File) (bool, error) {
	dir := r.m.cfg.Dir
	at := filepath.Join(dir, filepath.FromSlash(v.Path))
	if v.SubPath == "" {
		return writeVolume(at, files)
	}
	vol := filepath.Join(dir, ownDir, volumesDir, strconv.Itoa(i))
	changed, err := writeVolume(vol, files)
	if err != nil {
		return changed, err
	}
	if _, err := os.Lstat(at); err == nil {
		return changed, nil
	}
	if err := os.MkdirAll(filepath.Dir(at), 0o700); err != nil {
		return changed, err
	}
	rel, err := filepath.Rel(filepath.Dir(at), filepath.Join(vol, filepath.FromSlash(v.SubPath)))
	if err != nil {
		return changed, err
	}
	return true, os.Symlink(rel, at)
}

// listWatch lists and watches one object of resource by name, through the
// typed client (so that a fake clientset serves it in tests).
func listWatch(c kubernetes.Interface, ns, resource, name string) *cache.ListWatch {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	var list func(context.Context, metav1.ListOptions) (runtime.Object, error)
	var watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)
	switch resource {
	case "pods":
		i := c.CoreV1().Pods(ns)
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return i.List(ctx, o) }
		watchFn = i.Watch
	case "configmaps":
		i := c.CoreV1().ConfigMaps(ns)
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return i.List(ctx, o) }
		watchFn = i.Watch
	case "secrets":
		i := c.CoreV1().Secrets(ns)
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return i.List(ctx, o) }
		watchFn = i.Watch
	default:
		panic("mount: no watch of " + resource)
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return watchFn(ctx, o)
		},
	}
}
