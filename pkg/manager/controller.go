package manager

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/state"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// controllerResync is the informer's resync: a safety net that replays
// every cached pod through the queue (no API call), not the mechanism.
const controllerResync = 30 * time.Second

// newPodAge: a pod that started less than this long before its agent is
// attached is new, and its agent resets the connections that reached the
// app before the agent's redirect (see the agent's --new-pod).
const newPodAge = time.Minute

// controller is the manager's one writer to the cluster for agents and
// Services, and the one sender of agents' routes: a shared informer on the
// namespace's pods tells it what changed, and a workqueue serialises its
// reaction per pod, as Kubernetes controllers do. For each pod it asks RBAC
// about a new pod of an intercept, adds the pod's agent (attach, in a
// goroutine of its own), takes the agent's hello for the intercepts being
// created (settle: their mechanism, and whether it can apply them), points
// their Services at the agents (retarget, in a goroutine) and sends the
// agent its routes. A second queue, of Services, puts back those no
// intercept retargets any more (runRestores): removals queue them and
// wait, and it runs beyond the pod worker on shutdown, until Close has
// removed every intercept. Besides it, the manager writes to the cluster
// only in its one-time setup (setupAgents). The decisions (which intercepts select a pod, the
// routes its agent gets, its listen ports) are the intercept table's
// (package state), which the Server holds; the RPCs only change the table,
// queue the pods and wait, on Server.changes, for what the controller did.
type controller struct {
	s       *Server
	factory informers.SharedInformerFactory
	synced  cache.InformerSynced
	pods    corelisters.PodNamespaceLister
	queue   workqueue.TypedRateLimitingInterface[string]
	// services is the queue of Services to restore (by name): removals
	// add to it, and its worker (runRestores) puts back those that no
	// intercept retargets any more.
	services workqueue.TypedRateLimitingInterface[string]

	// attaching holds the pods an attach goroutine works on, retargeting
	// the intercepts a retarget goroutine works on (closed when it is
	// done); attaches counts those goroutines, which run owns and waits for.
	mu          sync.Mutex
	attaching   map[string]bool
	retargeting map[string]chan struct{}
	attaches    sync.WaitGroup
	// restored holds, by Service, the waiters of restoreServices: closed
	// once a sync of the Service that began after they came has ended.
	restored map[string][]chan struct{}
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
		services: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "services"}),
		restored:    map[string][]chan struct{}{},
		attaching:   map[string]bool{},
		retargeting: map[string]chan struct{}{},
	}
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			_, name, _ := cache.SplitMetaNamespaceKey(key)
			c.queue.Add(name)
		}
		// The handler runs after the cache has the change.
		s.changes.fire()
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
// and decides the mechanism of those being created; or, if it has none and
// an intercept selects it, it gets one.
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
		c.settle(ctx, p, ac)
		c.s.sendRoutes(ac, c.s.routesFor(p), false)
		return
	}
	mech, newPod, need := c.s.agentNeed(p)
	if !need || !attachable(p) {
		return
	}
	c.attach(ctx, p, mech, newPod)
}

// settle takes what the agent of p says in its hello for the intercepts
// being created on p: the first agent decides each one's mechanism (an
// agent of another protocol version never gets here: Watch refuses it).
// An intercept that takes the Service mechanism gets its Services
// retargeted, and its other pods are synced again for their routes.
func (c *controller) settle(ctx context.Context, p *corev1.Pod, ac *agentConn) {
	s := c.s
	var retarget []*state.Intercept
	decided := false
	s.imu.Lock()
	for _, ic := range s.table.Pending(p) {
		if ic.Mech != mechNone {
			continue
		}
		mech := mechOf(ac.hello, ic.Want)
		ic.Mech = mech
		ic.PB.Mech = mech
		decided = true
		if mech == mechService {
			// From the informer's cache: no API call under the lock.
			pods, _ := s.runningPods(ctx, ic.Pods)
			s.table.ServiceAgentPort(ic, pods)
			retarget = append(retarget, ic)
		}
	}
	s.imu.Unlock()
	for _, ic := range retarget {
		c.retarget(ctx, ic)
	}
	if decided {
		s.changes.fire()
		c.enqueueAll()
	}
}

// attach adds the agent to p in a goroutine of its own: the wait for the
// agent to start and connect must not hold up the other pods.
func (c *controller) attach(ctx context.Context, p *corev1.Pod, mech teleproto.Mechanism, newPod bool) {
	c.mu.Lock()
	busy := c.attaching[p.Name]
	c.attaching[p.Name] = true
	c.mu.Unlock()
	if busy {
		return
	}
	p = p.DeepCopy() // the informer's cache is read-only
	c.attaches.Go(func() {
		actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		_, err := c.s.attachAgent(actx, p, mech, newPod)
		c.done(p, err)
	})
}

// done ends an attach: on failure the pod is queued again, with backoff,
// and the intercepts being created on it fail with the reason.
func (c *controller) done(p *corev1.Pod, err error) {
	name := p.Name
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
	if errors.Is(err, errAgentEnded) {
		err = status.Errorf(codes.Unavailable, "%v (kubectl logs -n %s %s -c %s)", err, c.s.cfg.Namespace, name, c.s.hintAgent(context.Background(), name))
	}
	c.s.imu.Lock()
	failed := c.s.table.Pending(p)
	for _, ic := range failed {
		ic.Failed = err
	}
	c.s.imu.Unlock()
	if len(failed) > 0 {
		c.s.changes.fire()
	}
	c.s.log.Warn("attach agent", "pod", name, "err", err)
	c.queue.AddRateLimited(name)
}

// retarget points ic's Services at the agents (the Service mechanism), in a
// goroutine of its own: it waits for their EndpointSlices.
func (c *controller) retarget(ctx context.Context, ic *state.Intercept) {
	c.mu.Lock()
	if _, busy := c.retargeting[ic.ID]; busy {
		c.mu.Unlock()
		return
	}
	done := make(chan struct{})
	c.retargeting[ic.ID] = done
	c.mu.Unlock()
	// Registered first, then checked: a removal that began before the
	// check is seen here; one that begins after waits for done.
	c.s.imu.Lock()
	removing := ic.Removing
	c.s.imu.Unlock()
	if removing {
		c.mu.Lock()
		delete(c.retargeting, ic.ID)
		c.mu.Unlock()
		close(done)
		return
	}
	c.attaches.Go(func() {
		defer func() {
			c.mu.Lock()
			delete(c.retargeting, ic.ID)
			c.mu.Unlock()
			close(done)
		}()
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		err := c.s.retargetServices(rctx, ic)
		c.s.imu.Lock()
		if err != nil {
			ic.Failed = err
		} else {
			ic.Retargeted = true
		}
		c.s.imu.Unlock()
		c.s.changes.fire()
	})
}

// retargeted waits until no retarget of intercept id is under way, so that
// a removal restores what it changed.
func (c *controller) retargeted(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	done := c.retargeting[id]
	c.mu.Unlock()
	if done != nil {
		<-done
	}
}

// restoreTries bounds the attempts to restore a Service: after that the
// log says so, and kubectl tele uninstall restores it from its annotations.
const restoreTries = 5

// restoreServices queues the Services an intercept retargeted and waits,
// until ctx ends, for the controller to have put back those that no
// intercept retargets any more: leave returns once the app has its
// traffic again, and a shutdown once nothing is left retargeted.
func (c *controller) restoreServices(ctx context.Context, names []string) {
	var waits []chan struct{}
	c.mu.Lock()
	for _, name := range names {
		done := make(chan struct{})
		c.restored[name] = append(c.restored[name], done)
		waits = append(waits, done)
	}
	c.mu.Unlock()
	// Added after the waiters: a sync under way when they came is followed
	// by another (the queue keeps a name added while it is processed).
	for _, name := range names {
		c.services.Add(name)
	}
	for i, done := range waits {
		select {
		case <-done:
		case <-ctx.Done():
			c.s.log.Warn("service not restored yet", "svc", names[i], "err", ctx.Err())
			return
		}
	}
}

// runRestores restores the queued Services until stopRestores; its API
// calls run under ctx. It is apart from run, which stops first on
// shutdown: the intercepts are removed after, and their Services restored
// here, before the manager exits.
func (c *controller) runRestores(ctx context.Context) {
	for {
		name, quit := c.services.Get()
		if quit {
			return
		}
		c.mu.Lock()
		waiting := c.restored[name]
		delete(c.restored, name)
		c.mu.Unlock()
		err := c.syncService(ctx, name)
		if err != nil && ctx.Err() == nil && c.services.NumRequeues(name) < restoreTries-1 {
			// Its waiters wait for the next try.
			c.mu.Lock()
			c.restored[name] = append(waiting, c.restored[name]...)
			c.mu.Unlock()
			c.services.AddRateLimited(name)
			c.services.Done(name)
			continue
		}
		if err != nil {
			c.s.log.Warn("restore service: giving up; kubectl tele uninstall restores it", "svc", name, "err", err)
		}
		c.services.Forget(name)
		c.services.Done(name)
		for _, done := range waiting {
			close(done)
		}
	}
}

// stopRestores ends runRestores once the Services queued are done (the
// queue hands out what it holds before it says quit).
func (c *controller) stopRestores() { c.services.ShutDown() }

// syncService puts Service name back as it was before the Service
// mechanism retargeted it, unless an intercept still retargets it.
func (c *controller) syncService(ctx context.Context, name string) error {
	c.s.imu.Lock()
	inUse := c.s.table.RetargetsService(name)
	c.s.imu.Unlock()
	if inUse {
		return nil
	}
	return c.s.restoreService(ctx, name)
}

// enqueue queues pods.
func (c *controller) enqueue(pods []*corev1.Pod) {
	for _, p := range pods {
		c.queue.Add(p.Name)
	}
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
