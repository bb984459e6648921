// Package kubewait waits for Kubernetes objects to reach a state, as kubectl
// wait does: client-go's watchtools.UntilWithSync (an informer that lists,
// watches and relists after a broken watch), plus what a command line needs
// of it: a list or watch that the API server refuses for good ends the wait
// with that error, where the reflector alone would retry it forever.
package kubewait

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/klog/v2"
)

// ListWatch lists and watches with a typed client's List and Watch (e.g.
// client.CoreV1().Pods(ns)), each call's options set by opts.
func ListWatch[L runtime.Object](
	list func(context.Context, metav1.ListOptions) (L, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
	opts func(*metav1.ListOptions),
) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			opts(&o)
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			opts(&o)
			return watchFn(ctx, o)
		},
	}
}

// RefusedError is a list or watch the API server refused in a way retrying
// cannot mend (Forbidden, Unauthorized). Verb is "list" or "watch".
type RefusedError struct {
	Verb string
	Err  error
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%s refused: %v", e.Verb, e.Err) }
func (e *RefusedError) Unwrap() error { return e.Err }

// Until runs pre on the informer's first full list of lw (done if it says
// so), then cond on each event, until one holds, ctx ends, or the API server
// refuses the list or watch (a *RefusedError). When ctx was cancelled with a
// cause, Until returns the cause. clientset is the client lw's functions
// come from: it tells the reflector whether it may stream the first list as
// a watch (a fake clientset may not). The reflector's logs are dropped:
// what matters comes back as an error.
func Until(ctx context.Context, lw *cache.ListWatch, clientset any, obj runtime.Object, pre watchtools.PreconditionFunc, cond watchtools.ConditionFunc) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	refuse := func(verb string, err error) error {
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			cancel(&RefusedError{Verb: verb, Err: err})
		}
		return err
	}
	list, watchFn := lw.ListWithContextFunc, lw.WatchFuncWithContext
	guarded := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			l, err := list(ctx, o)
			return l, refuse("list", err)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := watchFn(ctx, o)
			return w, refuse("watch", err)
		},
	}
	err := untilWithSync(klog.NewContext(ctx, logr.Discard()),
		cache.ToListWatcherWithWatchListSemantics(guarded, clientset), obj, pre, cond)
	if cause := context.Cause(ctx); err != nil && cause != nil && cause != ctx.Err() {
		return cause
	}
	return err
}

// untilWithSync is watchtools.UntilWithSync but for how often it looks
// whether the informer has synced before pre: UntilWithSync asks
// cache.WaitForCacheSync, which looks every 100 ms, so a wait whose answer
// is in the first list (connect to a running manager) took 100 ms more
// than the list; this looks every 5 ms.
func untilWithSync(ctx context.Context, lw cache.ListerWatcher, obj runtime.Object, pre watchtools.PreconditionFunc, cond watchtools.ConditionFunc) error {
	indexer, informer, w, done := watchtools.NewIndexerInformerWatcherWithLogger(klog.FromContext(ctx), lw, obj)
	defer func() { <-done }() // the informer has stopped when this returns
	defer w.Stop()
	if pre != nil {
		if err := wait.PollUntilContextCancel(ctx, 5*time.Millisecond, true, func(context.Context) (bool, error) {
			return informer.HasSynced(), nil
		}); err != nil {
			return fmt.Errorf("list before the watch: %w", err)
		}
		if ok, err := pre(indexer); ok || err != nil {
			return err
		}
	}
	_, err := watchtools.UntilWithoutRetry(ctx, w, cond)
	return err
}
