package manager

// Who a laptop's session is, as the API server established it, and what
// RBAC lets that identity do: the manager acts for a session only as far
// as its user may act themselves (see docs/security.md).

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
	authv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/identity"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// DefaultClientCAFile is the CA bundle of the pod's ServiceAccount mount
// (the namespace's kube-root-ca.crt): the cluster's CA, which on kubeadm,
// kind and minikube also signs client certificates.
const DefaultClientCAFile = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

// Ways a session proves its identity, for logs and status.
const (
	provenByToken = "bearer token"
	provenByCert  = "client certificate"
)

// Challenge implements teleproto.ManagerServer.
func (s *Server) Challenge(context.Context, *teleproto.ChallengeRequest) (*teleproto.ChallengeResponse, error) {
	s.nmu.Lock()
	nonce := s.nonces.Issue(s.now(), teleproto.NonceSize)
	s.nmu.Unlock()
	return &teleproto.ChallengeResponse{Nonce: nonce, PodUid: s.cfg.PodUID, Namespace: s.cfg.Namespace}, nil
}

// authenticate establishes who proved what: a bearer token is asked about
// (one SelfSubjectReview made with it, which every authenticated user may
// make) and forgotten; a client certificate is verified against the
// cluster's client CAs, as the API server's x509 authenticator does, with a
// signature over this manager's statement for the proof's nonce. Each
// nonce is good once. Errors are gRPC statuses, and never hold the token.
func (s *Server) authenticate(ctx context.Context, p *teleproto.Proof) (identity.User, string, error) {
	if p == nil {
		return identity.User{}, "", status.Error(codes.Unauthenticated, "the laptop sent no proof of identity: use a kubectl-tele of this manager's version")
	}
	s.nmu.Lock()
	fresh := s.nonces.Take(p.GetNonce(), s.now())
	s.nmu.Unlock()
	if !fresh {
		return identity.User{}, "", status.Error(codes.Unauthenticated, "the proof of identity is for a nonce this manager did not give, or gave more than a minute ago, or that was used already: connect again")
	}
	switch c := p.GetCredential().(type) {
	case *teleproto.Proof_BearerToken:
		u, err := s.cfg.tokenUser(ctx, c.BearerToken)
		if err != nil {
			return identity.User{}, "", status.Errorf(codes.Unauthenticated, "the API server does not take your kubeconfig's token (refresh your login): %v", err)
		}
		return u, provenByToken, nil
	case *teleproto.Proof_ClientCertificate:
		u, err := s.certUser(ctx, c.ClientCertificate, p.GetNonce())
		if err != nil {
			return identity.User{}, "", err
		}
		return u, provenByCert, nil
	}
	return identity.User{}, "", status.Error(codes.Unauthenticated, "the proof of identity holds neither a bearer token nor a client certificate")
}

func (s *Server) certUser(ctx context.Context, c *teleproto.ClientCertificateProof, nonce []byte) (identity.User, error) {
	if s.cfg.PodUID == "" {
		return identity.User{}, status.Error(codes.FailedPrecondition, "this manager does not know its pod's UID (env POD_UID), which a certificate proof signs: run kubectl tele uninstall and connect again")
	}
	roots, from, err := s.clientCAs(ctx)
	if err != nil {
		return identity.User{}, status.Errorf(codes.Unavailable, "read the cluster's client CA: %v", err)
	}
	leaf, err := identity.VerifyChain(c.GetChainDer(), roots, s.now())
	if err != nil {
		return identity.User{}, status.Errorf(codes.Unauthenticated, "%v: it is not signed by a client CA this manager knows (%s). "+
			"Where the cluster signs client certificates with a CA of their own (k3s, k3d), let the manager read it: "+
			"kubectl -n kube-system create rolebinding kubectl-tele-%s-client-ca --role=extension-apiserver-authentication-reader --serviceaccount=%s:kubectl-tele-manager; "+
			"or use a kubeconfig with a token", err, from, s.cfg.Namespace, s.cfg.Namespace)
	}
	if err := teleproto.VerifyStatement(leaf, teleproto.ProofStatement(s.cfg.PodUID, s.cfg.Namespace, nonce), c.GetSignature()); err != nil {
		return identity.User{}, status.Errorf(codes.Unauthenticated, "client certificate %q: %v for this manager's challenge", leaf.Subject.CommonName, err)
	}
	u, err := identity.FromCertificate(leaf)
	if err != nil {
		return identity.User{}, status.Error(codes.Unauthenticated, err.Error())
	}
	return u, nil
}

// clientCAsTTL is how long the client CAs read are used before they are
// read again (they rotate rarely; a manager lives for its sessions).
const clientCAsTTL = 5 * time.Minute

// clientCAs is the cluster's client CAs as far as the manager can read
// them: its ServiceAccount's CA bundle, and the API server's own
// client-ca-file (ConfigMap kube-system/extension-apiserver-authentication)
// where someone let it read that (k3s signs client certificates with a CA
// of its own). from says where they came from, for a refusal.
func (s *Server) clientCAs(ctx context.Context) (*x509.CertPool, string, error) {
	s.nmu.Lock()
	defer s.nmu.Unlock()
	if s.cas != nil && s.now().Before(s.casUntil) {
		return s.cas, s.casFrom, nil
	}
	pool := x509.NewCertPool()
	from := ""
	if b, err := os.ReadFile(s.cfg.ClientCAFile); err == nil && pool.AppendCertsFromPEM(b) {
		from = s.cfg.ClientCAFile
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("read %s: %w", s.cfg.ClientCAFile, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cm, err := s.cfg.Client.CoreV1().ConfigMaps("kube-system").Get(cctx, "extension-apiserver-authentication", metav1.GetOptions{})
	switch {
	case err == nil && pool.AppendCertsFromPEM([]byte(cm.Data["client-ca-file"])):
		from += " and kube-system/extension-apiserver-authentication"
	case err == nil, apierrors.IsForbidden(err), apierrors.IsNotFound(err):
	default:
		s.log.WarnContext(ctx, "read the API server's client CA", "err", err)
	}
	if from == "" {
		from = "none: " + s.cfg.ClientCAFile + " is missing, and kube-system/extension-apiserver-authentication is not readable"
	}
	s.cas, s.casFrom, s.casUntil = pool, from, s.now().Add(clientCAsTTL)
	return pool, from, nil
}

// tokenUserWith returns who the API server takes a bearer token for: one
// SelfSubjectReview made with the token alone (none of the manager's own
// credentials) against base's server, trusting base's CA. The token is
// not kept: the client made for it is dropped on return.
func tokenUserWith(base *rest.Config) func(context.Context, string) (identity.User, error) {
	return func(ctx context.Context, token string) (identity.User, error) {
		if base == nil {
			return identity.User{}, errors.New("this manager has no API server to ask")
		}
		cfg := rest.AnonymousClientConfig(base)
		cfg.BearerToken = token
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return identity.User{}, fmt.Errorf("client for the token: %w", err)
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		r, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			// The API server's answer (Unauthorized), never the request.
			return identity.User{}, fmt.Errorf("self subject review: %s", apierrors.ReasonForError(err))
		}
		return userOf(r.Status.UserInfo), nil
	}
}

func userOf(ui authnv1.UserInfo) identity.User {
	u := identity.User{Name: ui.Username, UID: ui.UID, Groups: ui.Groups}
	if len(ui.Extra) > 0 {
		u.Extra = map[string][]string{}
		for k, v := range ui.Extra {
			u.Extra[k] = v
		}
	}
	return u
}

// authorize asks RBAC, one LocalSubjectAccessReview each, whether u may do
// each of attrs in the manager's namespace, and returns those it may not.
func (s *Server) authorize(ctx context.Context, u identity.User, attrs []authv1.ResourceAttributes) ([]authv1.ResourceAttributes, error) {
	var denied []authv1.ResourceAttributes
	for _, a := range attrs {
		ok, err := s.allowed(ctx, u, a)
		if err != nil {
			return nil, err
		}
		if !ok {
			denied = append(denied, a)
		}
	}
	return denied, nil
}

func (s *Server) allowed(ctx context.Context, u identity.User, a authv1.ResourceAttributes) (bool, error) {
	spec := authv1.SubjectAccessReviewSpec{ResourceAttributes: &a, User: u.Name, UID: u.UID, Groups: u.Groups}
	if len(u.Extra) > 0 {
		spec.Extra = map[string]authv1.ExtraValue{}
		for k, v := range u.Extra {
			spec.Extra[k] = v
		}
	}
	r, err := s.cfg.Client.AuthorizationV1().LocalSubjectAccessReviews(s.cfg.Namespace).Create(ctx, &authv1.LocalSubjectAccessReview{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.cfg.Namespace}, Spec: spec,
	}, metav1.CreateOptions{})
	if apierrors.IsForbidden(err) {
		return false, status.Errorf(codes.FailedPrecondition, "the manager may not ask RBAC what %s may do (create localsubjectaccessreviews in namespace %s): its Role does not grant that; run kubectl tele uninstall -n %s and connect again: %v",
			u.Name, s.cfg.Namespace, s.cfg.Namespace, err)
	}
	if err != nil {
		return false, status.Errorf(codes.Unavailable, "ask RBAC whether %s may %s: %v", u.Name, identity.Describe(a), err)
	}
	return r.Status.Allowed, nil
}

// authorizeNewPod asks RBAC about a pod the intercepts' owners have not
// been asked about yet (a new pod of an intercepted workload), before the
// pod gets an agent or routes for them: the controller attaches agents for
// an intercept only to pods its owner may attach one to themselves. It
// reports false when it could not ask (the pod is queued again).
func (s *Server) authorizeNewPod(ctx context.Context, pod string, ics []*interceptOwner) bool {
	for _, o := range ics {
		a := identity.Reviews(s.cfg.Namespace, []string{pod}, nil, false)[0]
		ok, err := s.allowed(ctx, o.user, a)
		if err != nil {
			s.log.WarnContext(ctx, "ask RBAC about a new pod of an intercept", "pod", pod, "intercept", o.id, "owner", o.user.Name, "err", err)
			return false
		}
		s.decide(o.id, pod, ok)
		if !ok {
			s.log.WarnContext(ctx, "intercept not applied on a new pod: its owner may not attach an agent to it",
				"pod", pod, "intercept", o.id, "owner", o.user.Name, "denied", identity.Describe(a))
		}
	}
	return true
}

// interceptOwner is an intercept's id and owner, copied out of the table
// for the API calls made without its lock.
type interceptOwner struct {
	id   string
	user identity.User
}
