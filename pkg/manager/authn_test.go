package manager

import (
	"bytes"
	"context"
	"crypto"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/identity"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// certProof is a proof with pair's certificate for a challenge of c,
// signed for the pod podUID.
func certProof(t *testing.T, c teleproto.ManagerClient, pair testcert.Pair, podUID string) *teleproto.ArriveRequest {
	t.Helper()
	req := proven(t, c, "laptop-user")
	tc := pair.TLS(t)
	sig, err := teleproto.SignStatement(tc.PrivateKey.(crypto.Signer), teleproto.ProofStatement(podUID, testNS, req.GetProof().GetNonce()))
	if err != nil {
		t.Fatal(err)
	}
	req.Proof.Credential = &teleproto.Proof_ClientCertificate{ClientCertificate: &teleproto.ClientCertificateProof{ChainDer: tc.Certificate, Signature: sig}}
	return req
}

// TestArriveProofs: a session is who the API server says its token is, or
// whom the cluster's CA certified, with a signature for this manager's
// nonce; nothing else gets in, and no token reaches the log.
func TestArriveProofs(t *testing.T) {
	ca := testcert.NewCA(t, "kubernetes")
	evil := testcert.NewCA(t, "kubernetes")
	cfg := testConfig(t)
	cfg.ClientCAFile = filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(cfg.ClientCAFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, c := startServer(t, cfg)
	ctx := context.Background()

	t.Run("bearer token", func(t *testing.T) {
		resp, err := c.Arrive(ctx, proven(t, c, "alice"))
		if err != nil {
			t.Fatal(err)
		}
		if id := resp.GetIdentity(); id.GetUsername() != "alice" || id.GetUid() != "uid-alice" || resp.GetProvenBy() != provenByToken {
			t.Errorf("identity %v by %q", id, resp.GetProvenBy())
		}
	})
	t.Run("client certificate", func(t *testing.T) {
		resp, err := c.Arrive(ctx, certProof(t, c, ca.Client(t, "bob", "dev"), cfg.PodUID))
		if err != nil {
			t.Fatal(err)
		}
		if id := resp.GetIdentity(); id.GetUsername() != "bob" || !slices.Equal(id.GetGroups(), []string{"dev", identity.Authenticated}) || resp.GetProvenBy() != provenByCert {
			t.Errorf("identity %v by %q", id, resp.GetProvenBy())
		}
	})
	for _, tt := range []struct {
		name string
		req  func(t *testing.T) *teleproto.ArriveRequest
		want string
	}{
		{"a token the API server refuses", func(t *testing.T) *teleproto.ArriveRequest {
			r := proven(t, c, "x")
			r.Proof.Credential = &teleproto.Proof_BearerToken{BearerToken: "s3cret-guess"}
			return r
		}, "does not take your kubeconfig's token"},
		{"no proof", func(t *testing.T) *teleproto.ArriveRequest {
			r := proven(t, c, "alice")
			r.Proof = nil
			return r
		}, "no proof of identity"},
		{"a nonce it did not give", func(t *testing.T) *teleproto.ArriveRequest {
			r := proven(t, c, "alice")
			r.Proof.Nonce = bytes.Repeat([]byte{1}, teleproto.NonceSize)
			return r
		}, "did not give"},
		{"a forged certificate (another CA of the same name)", func(t *testing.T) *teleproto.ArriveRequest {
			return certProof(t, c, evil.Client(t, "alice"), cfg.PodUID)
		}, "not signed by a client CA this manager knows"},
		{"a signature for another manager pod", func(t *testing.T) *teleproto.ArriveRequest {
			return certProof(t, c, ca.Client(t, "alice"), "another-pod")
		}, "does not verify"},
		{"a server certificate", func(t *testing.T) *teleproto.ArriveRequest {
			return certProof(t, c, ca.Leaf(t, "alice"), cfg.PodUID)
		}, "key usage"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Arrive(ctx, tt.req(t))
			wantCode(t, "Arrive", err, codes.Unauthenticated, tt.want)
		})
	}
	t.Run("a nonce used twice", func(t *testing.T) {
		req := proven(t, c, "alice")
		if _, err := c.Arrive(ctx, req); err != nil {
			t.Fatal(err)
		}
		_, err := c.Arrive(ctx, req)
		wantCode(t, "Arrive again", err, codes.Unauthenticated, "used already")
	})
	if strings.Contains(logs.String(), "token-") || strings.Contains(logs.String(), "s3cret-guess") {
		t.Errorf("a token reached the log:\n%s", logs.String())
	}
}

// TestCreateInterceptRefused: a session whose user RBAC does not let
// attach the agent to the workload's pods is refused, told what is
// missing, and nothing is changed: no pod patched, no intercept.
func TestCreateInterceptRefused(t *testing.T) {
	echo := map[string]string{"app": "echo"}
	cfg := testConfig(t)
	client := newFakeClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Namespace: testNS, Labels: echo},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.7.4"}})
	cfg.Client = client
	s, c := startServer(t, cfg)
	ctx := context.Background()
	resp, err := c.Arrive(ctx, proven(t, c, "mallory"))
	if err != nil {
		t.Fatal(err)
	}
	target := &teleproto.InterceptTarget{Pods: echoTarget.Pods, ServicePorts: []*teleproto.ServicePortRef{{Service: "echo", Port: 80}}}
	_, err = c.CreateIntercept(ctx, &teleproto.CreateInterceptRequest{SessionId: resp.GetSessionId(), Name: "echo", WorkloadKind: "Deployment", WorkloadName: "echo",
		Port: 8080, LocalPort: 7070, Target: target})
	wantCode(t, "CreateIntercept", err, codes.PermissionDenied,
		"mallory may not patch pods/ephemeralcontainers echo-1, update services echo in namespace team", "nothing was changed")
	var reviews []string
	for _, a := range client.Actions() {
		if a.GetVerb() == "patch" || a.GetVerb() == "update" {
			t.Errorf("the refusal changed %s %s", a.GetVerb(), a.GetResource().Resource)
		}
		if ca, ok := a.(k8stesting.CreateAction); ok && a.GetResource().Resource == "localsubjectaccessreviews" {
			r := ca.GetObject().(*authv1.LocalSubjectAccessReview)
			ra := r.Spec.ResourceAttributes
			reviews = append(reviews, r.Namespace+" "+r.Spec.User+" "+r.Spec.UID+" "+strings.Join(r.Spec.Groups, ",")+": "+identity.Describe(*ra)+" in "+ra.Namespace)
		}
	}
	want := []string{
		"team mallory uid-mallory system:authenticated: patch pods/ephemeralcontainers echo-1 in team",
		"team mallory uid-mallory system:authenticated: update services echo in team",
	}
	if !slices.Equal(reviews, want) {
		t.Errorf("reviews:\n%s\nwant:\n%s", strings.Join(reviews, "\n"), strings.Join(want, "\n"))
	}
	s.imu.Lock()
	n := s.table.Len()
	s.imu.Unlock()
	if n != 0 {
		t.Errorf("%d intercepts after the refusal", n)
	}
}

// TestAuthorizeNewPod: a new pod of an intercepted workload is asked
// about for each intercept's owner: mallory's intercept gets no route on
// it, alice's does.
func TestAuthorizeNewPod(t *testing.T) {
	a := testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")
	m := testIntercept(t, &session{id: "session-m", user: identity.User{Name: "mallory"}, hostUser: "m", hostname: "m-laptop"}, "echo", "echo", 8080, "x-dev=m")
	s := serverWithEchoIntercepts(t, a, m)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo-new", Labels: map[string]string{"app": "echo"}}}
	var ask []*interceptOwner
	s.imu.Lock()
	for _, ic := range s.table.Unchecked(p) {
		ask = append(ask, &interceptOwner{id: ic.ID, user: ic.Owner})
	}
	s.imu.Unlock()
	if len(ask) != 2 {
		t.Fatalf("%d intercepts to ask about, want 2", len(ask))
	}
	if !s.authorizeNewPod(context.Background(), p.Name, ask) {
		t.Fatal("could not ask")
	}
	routes := s.routesFor(p)
	if len(routes) != 1 || routes[0].GetIntercept() != a.ID {
		t.Errorf("routes on the new pod: %v, want alice's only", routes)
	}
}
