package kubewait

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

func podsLW(cs *fake.Clientset) *cache.ListWatch {
	pods := cs.CoreV1().Pods("ns")
	return ListWatch(pods.List, pods.Watch, func(o *metav1.ListOptions) { o.LabelSelector = "app=web" })
}

// The pod is created once every goroutine of the wait is blocked: on
// synctest's clock, after Until has listed and is watching.
func TestUntilSeesAnEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		go func() {
			time.Sleep(100 * time.Millisecond)
			_, _ = cs.CoreV1().Pods("ns").Create(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{"app": "web"}}}, metav1.CreateOptions{})
		}()
		atSync := -1 // pods listed
		err := Until(ctx, podsLW(cs), cs, &corev1.Pod{},
			func(s cache.Store) (bool, error) { atSync = len(s.List()); return atSync > 0, nil },
			func(ev watch.Event) (bool, error) { return ev.Type == watch.Added, nil })
		if err != nil {
			t.Fatal(err)
		}
		if atSync != 0 {
			t.Errorf("%d pods at sync, want none: the pod must come as an event", atSync)
		}
	})
}

func TestUntilEndsOnRefusal(t *testing.T) {
	for _, verb := range []string{"list", "watch"} {
		cs := fake.NewClientset()
		forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("no"))
		if verb == "list" {
			cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, forbidden })
		} else {
			cs.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, forbidden })
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := Until(ctx, podsLW(cs), cs, &corev1.Pod{}, nil, func(watch.Event) (bool, error) { return true, nil })
		cancel()
		r, ok := errors.AsType[*RefusedError](err)
		if !ok || r.Verb != verb || !apierrors.IsForbidden(err) {
			t.Errorf("%s forbidden: err = %v, want a RefusedError of %s", verb, err, verb)
		}
	}
}

// A cancel with a cause (another wait that decided) ends Until with it.
func TestUntilReturnsTheCause(t *testing.T) {
	cs := fake.NewClientset()
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("the Job ended")
	time.AfterFunc(100*time.Millisecond, func() { cancel(stop) })
	err := Until(ctx, podsLW(cs), cs, &corev1.Pod{}, nil, func(watch.Event) (bool, error) { return false, nil })
	if !errors.Is(err, stop) {
		t.Errorf("err = %v, want the cause", err)
	}
}
