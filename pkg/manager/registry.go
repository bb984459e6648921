package manager

import "sync"

// agentRegistry is the agents registered with this manager, one per pod,
// under its own lock; each agentConn locks its own state. It fires changes
// when an agent comes or goes, so that waits for agents wake.
type agentRegistry struct {
	changes *changes
	mu      sync.Mutex
	byPod   map[string]*agentConn
}

func newAgentRegistry(c *changes) *agentRegistry {
	return &agentRegistry{changes: c, byPod: map[string]*agentConn{}}
}

// get returns pod's registered agent, nil if none.
func (r *agentRegistry) get(pod string) *agentConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byPod[pod]
}

// register makes ac its pod's agent: a reconnecting agent replaces its old
// stream, which ends.
func (r *agentRegistry) register(ac *agentConn) {
	pod := ac.hello.GetPod()
	r.mu.Lock()
	if old, ok := r.byPod[pod]; ok {
		close(old.done)
	}
	r.byPod[pod] = ac
	r.mu.Unlock()
	r.changes.fire()
}

// unregister forgets ac, unless another agent of its pod replaced it.
func (r *agentRegistry) unregister(ac *agentConn) {
	pod := ac.hello.GetPod()
	r.mu.Lock()
	if r.byPod[pod] == ac {
		delete(r.byPod, pod)
		close(ac.done)
	}
	r.mu.Unlock()
	r.changes.fire()
}

// drop cuts off the registered agent of pod unless it is container.
func (r *agentRegistry) drop(pod, container string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ac := r.byPod[pod]; ac != nil && ac.hello.GetContainer() != container {
		delete(r.byPod, pod)
		close(ac.done)
	}
}

// each calls f with every registered agent, under the registry's lock.
func (r *agentRegistry) each(f func(*agentConn)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ac := range r.byPod {
		f(ac)
	}
}

// connections sums, over the agents of pods, what they reported of port
// when they last applied routes: the connections that do not pass the
// redirect (opened before it) and those reset.
func (r *agentRegistry) connections(pods []string, port uint32) (open, reset uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range pods {
		ac := r.byPod[name]
		if ac == nil {
			continue
		}
		ac.mu.Lock()
		for _, c := range ac.conns {
			if c.GetPort() == port {
				open += c.GetBypassing()
				reset += c.GetResetConnections()
			}
		}
		ac.mu.Unlock()
	}
	return open, reset
}

// wiretapCopies sums, over the registered agents, the copies of the
// wiretap id sent and dropped.
func (r *agentRegistry) wiretapCopies(id string) (sent, dropped uint64) {
	r.each(func(ac *agentConn) {
		ac.mu.Lock()
		if c := ac.taps[id]; c != nil {
			sent += c.GetSent()
			dropped += c.GetDropped()
		}
		ac.mu.Unlock()
	})
	return sent, dropped
}
