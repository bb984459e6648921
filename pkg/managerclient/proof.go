package managerclient

// Proving to the manager who the laptop's user is, with the credential of
// their kubeconfig as client-go presents it to the API server: a client
// certificate (the API server's x509 authenticator comes before its token
// authenticators) signs the manager's challenge, and its key stays here;
// otherwise the bearer token client-go sends (static, token file, exec
// plugin, auth provider) goes to the manager, which asks the API server
// who it is and forgets it. Either goes only to the manager Job's pod,
// checked by Ensure, through the API server's port-forward (TLS).

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// credential is what a laptop proves its identity with: a client
// certificate's chain and key, or a bearer token.
type credential struct {
	chain [][]byte
	key   crypto.Signer
	token string
}

// proofFor is the proof of c for the manager's challenge. podUID is the
// UID of the pod Ensure checked is the manager Job's: a challenge from
// another pod is refused, and a signature is bound to it.
func (c *credential) proofFor(ch *teleproto.ChallengeResponse, namespace, podUID string) (*teleproto.Proof, error) {
	if ch.GetPodUid() != podUID {
		return nil, fmt.Errorf("the manager answered as pod UID %q, but the manager pod in namespace %s is %q: not proving your identity to it", ch.GetPodUid(), namespace, podUID)
	}
	p := &teleproto.Proof{Nonce: ch.GetNonce()}
	if c.key == nil {
		p.Credential = &teleproto.Proof_BearerToken{BearerToken: c.token}
		return p, nil
	}
	sig, err := teleproto.SignStatement(c.key, teleproto.ProofStatement(podUID, namespace, ch.GetNonce()))
	if err != nil {
		return nil, fmt.Errorf("sign the manager's challenge with your client certificate's key: %w", err)
	}
	p.Credential = &teleproto.Proof_ClientCertificate{ClientCertificate: &teleproto.ClientCertificateProof{ChainDer: c.chain, Signature: sig}}
	return p, nil
}

// credentialOf finds cfg's credential as client-go uses it: a client
// certificate (given, or from an exec plugin) first, else the bearer token
// of a SelfSubjectReview made with cfg (one request, which every
// authenticated user may make).
func credentialOf(ctx context.Context, cfg *rest.Config) (*credential, error) {
	tc, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("your kubeconfig's TLS settings: %w", err)
	}
	if cert, err := clientCertificate(tc); err != nil {
		return nil, err
	} else if cert != nil {
		key, ok := cert.PrivateKey.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("your kubeconfig's client certificate key (%T) cannot sign", cert.PrivateKey)
		}
		return &credential{chain: cert.Certificate, key: key}, nil
	}
	token, err := bearerToken(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &credential{token: token}, nil
}

// clientCertificate is tc's client certificate, nil if it has none.
func clientCertificate(tc *tls.Config) (*tls.Certificate, error) {
	if tc == nil {
		return nil, nil
	}
	if len(tc.Certificates) > 0 && len(tc.Certificates[0].Certificate) > 0 {
		return &tc.Certificates[0], nil
	}
	if tc.GetClientCertificate == nil {
		return nil, nil
	}
	// An exec plugin's (or a rotating file's): an empty one if it gives
	// a token instead.
	c, err := tc.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil {
		return nil, fmt.Errorf("get your kubeconfig's client certificate: %w", err)
	}
	if c == nil || len(c.Certificate) == 0 {
		return nil, nil
	}
	return c, nil
}

// bearerToken makes a SelfSubjectReview with cfg and returns the bearer
// token client-go sent with it, read beneath its authentication (the
// transport that cfg.Wrap adds sees requests as they leave).
func bearerToken(ctx context.Context, cfg *rest.Config) (string, error) {
	var mu sync.Mutex
	token := ""
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			if t, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
				mu.Lock()
				token = t
				mu.Unlock()
			}
			return rt.RoundTrip(req)
		})
	})
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return "", fmt.Errorf("client for your kubeconfig: %w", err)
	}
	if _, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("ask the API server who you are (a SelfSubjectReview, which every authenticated user may make): %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if token == "" {
		return "", errors.New("your kubeconfig has neither a client certificate nor a bearer token (basic auth and proxies that authenticate for you are not supported): the manager cannot tell who you are")
	}
	return token, nil
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
