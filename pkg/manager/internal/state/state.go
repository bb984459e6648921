// Package state is the manager's intercept table and every decision taken
// from it: whether an intercept may join (conflicts), whose it is, which
// routes each pod's agent must have, what a new pod gets, why an agent is
// refused, and what leave, the loss of a session and the manager's stop
// remove. It does no I/O: no API server, no streams, no goroutines, no
// locks and no clock. The manager holds a Table under one mutex, asks it,
// and does the I/O the answers call for (attaching agents, pushing routes,
// retargeting and restoring Services, logging).
package state

import (
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/identity"
	"github.com/kubectl-tele/kubectl-tele/pkg/match"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// The mechanisms, short: mechNone is an intercept's before its first
// pods' agents are attached (and, in a request, "the manager chooses").
const (
	mechNone     = teleproto.Mechanism_MECHANISM_UNSPECIFIED
	mechNftables = teleproto.Mechanism_MECHANISM_NFTABLES
	mechService  = teleproto.Mechanism_MECHANISM_SERVICE
)

// Intercept is one laptop's claim on a workload's port.
//
// Its name (PB.Name) is the user's and unique only among its session's
// intercepts, so that two developers' default intercepts of one workload,
// both named after it, can coexist and each leaves its own with the same
// command. The agents and the manager know it by ID, unique in the
// namespace.
type Intercept struct {
	ID string
	PB *teleproto.Intercept
	// Session is the id of the session that created it, and Owner the
	// identity the API server gave that session: the one RBAC is asked
	// about for each of its pods.
	Session  string
	Owner    identity.User
	Pods     PodSet
	Match    match.Matcher
	Mech     teleproto.Mechanism // mechNone until its first pods' agents are attached
	Services []string            // retargeted by the Service mechanism
	// Want is the mechanism the laptop asked for (mechNone: the manager
	// chooses from the first agent's hello, see Pending).
	Want teleproto.Mechanism
	// Creating holds while CreateIntercept waits for it to apply: every
	// agent of its pods is checked (AgentRefusal) as it registers, and
	// Failed says why it cannot be applied.
	Creating bool
	Failed   error
	// ServicePorts are the Service ports the Service mechanism retargets
	// (InterceptTarget.service_ports); Retargeted holds once they are.
	ServicePorts []*teleproto.ServicePortRef
	Retargeted   bool
	// AgentPort is where every pod's agent listens for the port, with the
	// Service mechanism (its Services target it; see ServiceAgentPort); 0
	// until chosen, and with nftables, where each pod has its own.
	AgentPort uint32
	Removing  bool // agents are dropping it; connections still reach the laptop
	// ResetIdle asks the agents to reset idle connections that bypass
	// their redirect (nftables only).
	ResetIdle bool
	// TLS, in memory only, is what the agents terminate TLS with;
	// LocalTLS sends the matching requests on to the laptop over TLS.
	TLS      *teleproto.TLSCertificate
	LocalTLS bool
	// Authz holds, by pod name, whether RBAC lets Owner attach an agent to
	// the pod (patch pods/ephemeralcontainers): an intercept is routed only
	// on pods it allows. A pod with no entry has not been asked about yet.
	Authz map[string]bool
}

// AllowedOn reports whether RBAC was asked, and lets ic's owner attach
// an agent to pod.
func (ic *Intercept) AllowedOn(pod string) bool { return ic.Authz[pod] }

// Who is ic's owner for messages (teleproto.Intercept.Who).
func (ic *Intercept) Who() string { return ic.PB.Who() }

// Wiretap reports whether ic is a wiretap: its agents copy the matching
// requests to the laptop while the app answers them. A wiretap takes
// nothing from anyone, so it never conflicts.
func (ic *Intercept) Wiretap() bool {
	return ic.PB.GetKind() == teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP
}

// Clone is ic as the session viewer sees it in a list (Mine when it is
// viewer's), sharing nothing with ic. ic.PB holds no key material (the
// certificate is ic.TLS).
func (ic *Intercept) Clone(viewer string) *teleproto.Intercept {
	out := proto.CloneOf(ic.PB)
	out.Mine = viewer != "" && ic.Session == viewer
	return out
}

// SetState says in pb whether a running pod's agent applies the intercept.
func SetState(pb *teleproto.Intercept, applied bool) {
	pb.InterceptState = teleproto.InterceptState_INTERCEPT_STATE_WAITING
	if applied {
		pb.InterceptState = teleproto.InterceptState_INTERCEPT_STATE_ACTIVE
	}
}

// Table is the namespace's intercepts, by id. It is not safe for
// concurrent use: its owner locks it, and the Intercepts in it.
type Table struct {
	ics  map[string]*Intercept
	rand func() string
	// ports are the agents' listen ports, by pod name and app port, as
	// chosen (agentPort).
	ports map[string]map[uint32]uint32
}

// NewTable returns an empty table whose ids take their random part from
// random, which returns at least 8 characters (crypto/rand.Text; tests pass
// their own).
func NewTable(random func() string) *Table {
	return &Table{ics: map[string]*Intercept{}, rand: random, ports: map[string]map[uint32]uint32{}}
}

// Conflict says why ic may not join the table, nil if it may (see
// conflict); Add decides again.
func (t *Table) Conflict(ic *Intercept) error { return t.conflict(ic) }

// Add checks that ic may join the table (see conflict) and, if it may,
// gives it a new id (ic.ID, also returned) and adds it: reserved while its
// pods' agents are attached.
func (t *Table) Add(ic *Intercept) (string, error) {
	if err := t.conflict(ic); err != nil {
		return "", err
	}
	ic.ID = t.newID(ic.PB.Name, ic.PB.Owner)
	t.ics[ic.ID] = ic
	return ic.ID, nil
}

// newID returns an id for the intercept name of owner that no intercept
// in t has. It is opaque to the agents, which carry it back in
// Open.intercept_id; name and owner make it readable in their logs and in
// the 502s they answer, and the random part tells apart two sessions of one
// owner and an intercept created again after a leave.
func (t *Table) newID(name, owner string) string {
	for {
		id := name + "/" + owner + "/" + t.rand()[:8]
		if _, taken := t.ics[id]; !taken {
			return id
		}
	}
}

// sorted returns the intercepts by id: the same table, the same answers.
func (t *Table) sorted() []*Intercept {
	out := make([]*Intercept, 0, len(t.ics))
	for _, ic := range t.ics {
		out = append(out, ic)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// conflict decides whether ic may join t. A session may not use a name
// twice; another session's intercept of the same name is no conflict
// (names are per session). What would take another intercept's traffic is
// refused, naming its owner: a second global intercept of a workload's
// port, a global one over header ones or header ones under a global one,
// and a second identical match.
func (t *Table) conflict(ic *Intercept) error {
	// The first conflict in a fixed order: the same state, the same message.
	olds := t.sorted()
	for _, old := range olds {
		if old.Session != ic.Session || old.PB.Name != ic.PB.Name {
			continue
		}
		if old.Removing {
			return status.Errorf(codes.Unavailable, "your intercept %s is being removed; try again in a moment", ic.PB.Name)
		}
		return status.Errorf(codes.AlreadyExists, "you already have an intercept named %s (of %s/%s); leave it first or choose another name with --name",
			ic.PB.Name, strings.ToLower(old.PB.WorkloadKind), old.PB.WorkloadName)
	}
	for _, old := range olds {
		if old.Removing || old.Wiretap() || ic.Wiretap() {
			continue // a wiretap takes nothing from anyone
		}
		if old.PB.WorkloadKind != ic.PB.WorkloadKind || old.PB.WorkloadName != ic.PB.WorkloadName || old.PB.Port != ic.PB.Port {
			continue
		}
		switch {
		case old.Match.Global():
			return status.Errorf(codes.AlreadyExists, "port %d of %s/%s is intercepted as a whole by %s (intercept %s)", ic.PB.Port, strings.ToLower(ic.PB.WorkloadKind), ic.PB.WorkloadName, old.Who(), old.PB.Name)
		case ic.Match.Global():
			return status.Errorf(codes.AlreadyExists, "port %d of %s/%s already has filtered intercepts (%s by %s): a global intercept would take their traffic; filter yours with --http-match, --http-path* or --http-method", ic.PB.Port, strings.ToLower(ic.PB.WorkloadKind), ic.PB.WorkloadName, old.PB.Name, old.Who())
		case old.Match.Equal(ic.Match):
			return status.Errorf(codes.AlreadyExists, "%s/%s port %d with match %s is already intercepted by %s (intercept %s)", strings.ToLower(ic.PB.WorkloadKind), ic.PB.WorkloadName, ic.PB.Port, ic.Match, old.Who(), old.PB.Name)
		}
	}
	return nil
}

// Get returns the intercept id, nil if there is none.
func (t *Table) Get(id string) *Intercept { return t.ics[id] }

// All returns every intercept, by id.
func (t *Table) All() []*Intercept { return t.sorted() }

// Len is the number of intercepts, those being removed included.
func (t *Table) Len() int { return len(t.ics) }

// Own finds the intercept that the session calls name: what its leave
// removes. Another session's intercept of that name is refused, naming its
// owners: each developer leaves only their own.
func (t *Table) Own(session, name string) (*Intercept, error) {
	var owners []string
	for _, ic := range t.ics {
		if ic.PB.Name != name {
			continue
		}
		if ic.Session == session {
			return ic, nil
		}
		owners = append(owners, ic.Who())
	}
	if len(owners) == 0 {
		return nil, status.Errorf(codes.NotFound, "you have no intercept named %s; kubectl tele list shows them", name)
	}
	sort.Strings(owners)
	return nil, status.Errorf(codes.PermissionDenied, "intercept %s is not yours: it belongs to %s; you can leave only your own (marked (you) in kubectl tele list)",
		name, strings.Join(slices.Compact(owners), ", "))
}

// MarkRemoving starts the removal of intercept id, the first of its two
// steps: its agents are no longer given it (RoutesFor), while connections
// they already route still reach the laptop, and its name stays taken. It
// returns the intercept, false if there is none.
func (t *Table) MarkRemoving(id string) (*Intercept, bool) {
	ic, ok := t.ics[id]
	if ok {
		ic.Removing = true
	}
	return ic, ok
}

// Delete forgets ic, the second step of its removal, unless its id is
// another intercept's by now. It reports whether ic was forgotten.
func (t *Table) Delete(ic *Intercept) bool {
	if t.ics[ic.ID] != ic {
		return false
	}
	delete(t.ics, ic.ID)
	return true
}

// OfSession returns the ids of the session's intercepts: what the loss of
// the session removes.
func (t *Table) OfSession(session string) []string {
	var ids []string
	for _, ic := range t.sorted() {
		if ic.Session == session {
			ids = append(ids, ic.ID)
		}
	}
	return ids
}

// NotRemoving returns the ids of the intercepts whose removal has not
// started: what the manager's stop removes, after its sessions' ends
// removed theirs (an intercept a CreateIntercept added as its session
// ended is seen only here).
func (t *Table) NotRemoving() []string {
	var ids []string
	for _, ic := range t.sorted() {
		if !ic.Removing {
			ids = append(ids, ic.ID)
		}
	}
	return ids
}

// Unchecked returns the attached intercepts, not being removed, that
// select pod and whose owner RBAC has not been asked about for it (a new
// pod of an intercepted workload): the manager asks, then Decides, before
// the pod gets an agent or routes for them.
func (t *Table) Unchecked(pod *corev1.Pod) []*Intercept {
	var out []*Intercept
	for _, ic := range t.sorted() {
		if ic.Mech == mechNone || ic.Removing || !ic.Pods.Has(pod) {
			continue
		}
		if _, asked := ic.Authz[pod.Name]; !asked {
			out = append(out, ic)
		}
	}
	return out
}

// Pending returns the intercepts being created, not failed, that select
// pod and whose owner RBAC lets attach an agent to it: pod needs an agent
// for them, and its agent's hello decides their mechanism (the first) and
// whether it can apply them (AgentRefusal).
func (t *Table) Pending(pod *corev1.Pod) []*Intercept {
	var out []*Intercept
	for _, ic := range t.sorted() {
		if ic.Creating && ic.Failed == nil && !ic.Removing && ic.Pods.Has(pod) && ic.AllowedOn(pod.Name) {
			out = append(out, ic)
		}
	}
	return out
}

// Decide records RBAC's answer for ic's owner on pod.
func Decide(ic *Intercept, pod string, allowed bool) {
	if ic.Authz == nil {
		ic.Authz = map[string]bool{}
	}
	ic.Authz[pod] = allowed
}

// ForgetPod drops the answers about a pod that is gone, and its agent's
// listen ports (a pod of the same name later is asked about anew).
func (t *Table) ForgetPod(name string) {
	delete(t.ports, name)
	for _, ic := range t.ics {
		delete(ic.Authz, name)
	}
}

// RetargetsService reports whether an intercept (being removed or not)
// that uses the Service mechanism has retargeted Service name, or is to
// (its ServicePorts name it): until none does, the Service stays
// retargeted. Every port of the Service is restored at once, so one
// intercept's leaving must not undo another's, whatever its workload or
// port.
func (t *Table) RetargetsService(name string) bool {
	for _, ic := range t.ics {
		if ic.Mech != mechService {
			continue
		}
		if slices.Contains(ic.Services, name) || slices.ContainsFunc(ic.ServicePorts, func(r *teleproto.ServicePortRef) bool { return r.GetService() == name }) {
			return true
		}
	}
	return false
}
