// Package identity decides who a laptop's session is and what the manager
// must ask RBAC before acting for it: a client certificate's user as the
// API server's x509 authenticator maps it, the nonces a proof is bound
// to, and the access reviews an intercept needs. It does no I/O: the
// manager makes the API calls (SelfSubjectReview for a token,
// LocalSubjectAccessReview for a decision) and asks this package about
// their inputs and answers.
package identity

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	authv1 "k8s.io/api/authorization/v1"
)

// User is a session's identity as the API server authenticates it: what
// RBAC is asked about. It is no credential: keeping it is safe.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// String is the user as people know them, the name the API server gives.
func (u User) String() string { return u.Name }

// Authenticated is the group the API server adds to every authenticated
// user (RBAC grants SelfSubjectReview and discovery to it).
const Authenticated = "system:authenticated"

// FromCertificate is the user a verified client certificate authenticates,
// as the API server's x509 authenticator maps it: the subject's common name
// is the user name, its organizations the groups, and every authenticated
// user is in system:authenticated. A certificate with no common name
// authenticates nobody.
func FromCertificate(cert *x509.Certificate) (User, error) {
	cn := cert.Subject.CommonName
	if cn == "" {
		return User{}, errors.New("the client certificate has no common name (the API server takes none as a user)")
	}
	groups := slices.Clone(cert.Subject.Organization)
	if !slices.Contains(groups, Authenticated) {
		groups = append(groups, Authenticated)
	}
	return User{Name: cn, Groups: groups}, nil
}

// VerifyChain parses a DER chain, leaf first, and verifies it against
// roots (the cluster's client CAs) at now, for client authentication, as
// the API server does. It returns the leaf.
func VerifyChain(chainDER [][]byte, roots *x509.CertPool, now time.Time) (*x509.Certificate, error) {
	if len(chainDER) == 0 {
		return nil, errors.New("no client certificate")
	}
	var certs []*x509.Certificate
	for i, der := range chainDER {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("client certificate %d of the chain: %w", i, err)
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, fmt.Errorf("client certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	return certs[0], nil
}

// Nonces are the Challenge nonces not yet used by an Arrive: each is good
// once, for NonceTTL. At most MaxNonces are outstanding: more Challenges
// push the oldest out, so a flood of them costs the manager a bounded
// table, and only delays the Arrives that took them.
type Nonces struct {
	issued map[string]time.Time // by nonce, its expiry
	order  []string             // oldest first
}

// NonceTTL and MaxNonces bound a nonce's life and the table.
const (
	NonceTTL  = time.Minute
	MaxNonces = 1024
)

// Issue returns a fresh random nonce of n bytes, good until now+NonceTTL.
func (t *Nonces) Issue(now time.Time, n int) []byte {
	if t.issued == nil {
		t.issued = map[string]time.Time{}
	}
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	t.prune(now)
	for len(t.order) >= MaxNonces {
		delete(t.issued, t.order[0])
		t.order = t.order[1:]
	}
	t.issued[string(b)] = now.Add(NonceTTL)
	t.order = append(t.order, string(b))
	return b
}

// Take uses nonce up: it reports whether it was issued, unused and not
// expired at now. Taken, expired or unknown, it is good no more.
func (t *Nonces) Take(nonce []byte, now time.Time) bool {
	exp, ok := t.issued[string(nonce)]
	if !ok {
		return false
	}
	delete(t.issued, string(nonce))
	t.order = slices.DeleteFunc(t.order, func(n string) bool { return n == string(nonce) })
	return now.Before(exp)
}

func (t *Nonces) prune(now time.Time) {
	for len(t.order) > 0 {
		if exp, ok := t.issued[t.order[0]]; ok && now.Before(exp) {
			return
		}
		delete(t.issued, t.order[0])
		t.order = t.order[1:]
	}
}

// Reviews are the access reviews a user's intercept (or wiretap) of pods
// in ns needs, as the user's own rights, before the manager does anything
// for it: patch of pods/ephemeralcontainers on each pod (attaching the
// agent, as kubectl debug would), and, when the intercept may retarget
// Services (the Service mechanism: mayRetarget), update on each of them,
// as the manager does it. In a stable order, without repeats.
func Reviews(ns string, pods, services []string, mayRetarget bool) []authv1.ResourceAttributes {
	var out []authv1.ResourceAttributes
	for _, p := range sortedUnique(pods) {
		out = append(out, authv1.ResourceAttributes{Namespace: ns, Verb: "patch", Resource: "pods", Subresource: "ephemeralcontainers", Name: p})
	}
	if mayRetarget {
		for _, s := range sortedUnique(services) {
			out = append(out, authv1.ResourceAttributes{Namespace: ns, Verb: "update", Resource: "services", Name: s})
		}
	}
	return out
}

func sortedUnique(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// Describe names what a review asks, as kubectl auth can-i spells it:
// "patch pods/ephemeralcontainers echo-1".
func Describe(a authv1.ResourceAttributes) string {
	r := a.Resource
	if a.Subresource != "" {
		r += "/" + a.Subresource
	}
	if a.Group != "" {
		r += "." + a.Group
	}
	if a.Name != "" {
		r += " " + a.Name
	}
	return a.Verb + " " + r
}

// Refusal is the message of a user's refusal, naming what RBAC denied
// them in ns and how they can check it.
func Refusal(u User, ns string, denied []authv1.ResourceAttributes) string {
	var what []string
	for _, a := range denied {
		what = append(what, Describe(a))
	}
	first := denied[0]
	res := first.Resource
	if first.Subresource != "" {
		res += "/" + first.Subresource
	}
	return fmt.Sprintf("%s may not %s in namespace %s, which the intercept needs (the manager does for you only what you may do yourself; check with kubectl auth can-i %s %s -n %s); nothing was changed",
		u.Name, strings.Join(what, ", "), ns, first.Verb, res, ns)
}
