package manager

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// controllerResync is the informer's resync: a safety net that replays
// every cached pod through the queue (no API call), not the mechanism.
const controllerResync = 30 * time.Second

// newPodAge: a pod that started less than this long before its agent is
// attached is new, and its agent resets the connections that reached the
// app before the agent's redirect (see the agent's --new-pod).
const newPodAge = time.Minute

// controller keeps every agent's routes current and gives each new pod of
// an intercepted workload its agent as soon as the pod exists, before it is
// Ready where the kubelet allows: a shared informer on the namespace's pods
// tells it what changed, and a workqueue serialises its reaction per pod, as
// Kubernetes controllers do. The decisions (which intercepts select a pod,
// the routes its agent gets) are the intercept table's (package state),
// which the Server holds; the controller applies them.
type controller struct {
	s       *Server
	factory informers.SharedInformerFactory
	synced  cache.InformerSynced
	pods    corelisters.PodNamespaceLister
	queue   workqueue.TypedRateLimitingInterface[string]

	// attaching holds the pods an attach goroutine works on; attaches
	// counts those goroutines, which run owns and waits for.
	mu        sync.Mutex
	attaching map[string]bool
	attaches  sync.WaitGroup
}

func newController(s *Server) *controller {
	f := informers.NewSharedInformerFactoryWithOptions(s.cfg.Client, controllerResync, informers.WithNamespace(s.cfg.Namespace),
		// Every pod of the namespace is cached: keep less of each.
		informers.WithTransform(func(obj any) (any, error) {
			if m, ok := obj.(metav1.Object); ok {
				m.SetManagedFields(nil)
			}
			return obj, nil
		}))
	inf := f.Core().V1().Pods()
	c := &controller{
		s:       s,
		factory: f,
		synced:  inf.Informer().HasSynced,
		pods:    inf.Lister().Pods(s.cfg.Namespace),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "pods"}),
		attaching: map[string]bool{},
	}
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			_, name, _ := cache.SplitMetaNamespaceKey(key)
			c.queue.Add(name)
		}
	}
	inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	})
	return c
}

// run starts the informer, waits for its first list, and reconciles queued
// pods until ctx ends; it returns once its goroutines and the informer's
// have stopped.
func (c *controller) run(ctx context.Context) error {
	c.factory.Start(ctx.Done())
	defer c.factory.Shutdown()
	defer c.attaches.Wait()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		<-gctx.Done()
		c.queue.ShutDown()
		return nil
	})
	g.Go(func() error {
		if !cache.WaitForCacheSync(gctx.Done(), c.synced) {
			return gctx.Err()
		}
		c.s.log.Info("pod informer synced")
		for c.processNext(gctx) {
		}
		return nil
	})
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (c *controller) processNext(ctx context.Context) bool {
	name, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(name)
	c.sync(ctx, name)
	return true
}

// sync reconciles one pod: its agent gets the routes the intercepts give it,
// or, if it has none and an intercept selects it, it gets one.
func (c *controller) sync(ctx context.Context, name string) {
	p, err := c.pods.Get(name)
	if apierrors.IsNotFound(err) {
		c.queue.Forget(name) // its agent's stream ends with it
		c.s.imu.Lock()
		c.s.table.ForgetPod(name)
		c.s.imu.Unlock()
		return
	}
	if err != nil {
		return
	}
	// Intercepts whose owners RBAC has not been asked about for this pod
	// (it is new): asked first, so that it gets an agent, and routes, only
	// for those it lets attach one.
	var ask []*interceptOwner
	c.s.imu.Lock()
	for _, ic := range c.s.table.Unchecked(p) {
		ask = append(ask, &interceptOwner{id: ic.ID, user: ic.Owner})
	}
	c.s.imu.Unlock()
	if len(ask) > 0 && !c.s.authorizeNewPod(ctx, name, ask) {
		c.queue.AddRateLimited(name)
		return
	}
	if ac := c.s.agent(name); ac != nil {
		c.s.sendRoutes(ac, c.s.routesFor(p), false)
		return
	}
	mech := c.s.mechFor(p)
	if mech == mechNone || !attachable(p) {
		return
	}
	c.attach(ctx, p, mech)
}

// attach adds the agent to p in a goroutine of its own: the wait for the
// agent to start and connect must not hold up the other pods.
func (c *controller) attach(ctx context.Context, p *corev1.Pod, mech teleproto.Mechanism) {
	c.mu.Lock()
	busy := c.attaching[p.Name]
	c.attaching[p.Name] = true
	c.mu.Unlock()
	if busy {
		return
	}
	newPod := p.Status.StartTime == nil || time.Since(p.Status.StartTime.Time) < newPodAge
	p = p.DeepCopy() // the informer's cache is read-only
	c.attaches.Go(func() {
		actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		_, err := c.s.attachAgent(actx, p, mech, newPod)
		c.done(p.Name, err)
	})
}

// done ends an attach: on failure the pod is queued again, with backoff.
func (c *controller) done(name string, err error) {
	c.mu.Lock()
	delete(c.attaching, name)
	c.mu.Unlock()
	if err == nil {
		c.queue.Forget(name)
		c.queue.Add(name) // its routes, now that its agent is there
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	c.s.log.Warn("attach agent to new pod", "pod", name, "err", err)
	c.queue.AddRateLimited(name)
}

// enqueueAll queues every cached pod: an intercept was added or removed.
func (c *controller) enqueueAll() {
	ps, err := c.pods.List(labels.Everything())
	if err != nil {
		return
	}
	for _, p := range ps {
		c.queue.Add(p.Name)
	}
}

// cached returns the namespace's pods from the informer's cache, once it
// has synced; ok is false before.
func (c *controller) cached() (pods []*corev1.Pod, ok bool) {
	if c == nil || !c.synced() {
		return nil, false
	}
	ps, err := c.pods.List(labels.Everything())
	return ps, err == nil
}

// attachable: a pod that will run, or runs, and is not going away. A pod
// still Pending gets its agent too: the kubelet then starts it beside the
// app, before the pod is Ready and in a Service's endpoints.
func attachable(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && (p.Status.Phase == corev1.PodPending || p.Status.Phase == corev1.PodRunning)
}
