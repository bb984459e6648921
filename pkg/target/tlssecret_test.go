package target

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
)

func TestReadTLSSecret(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	a, b := ca.Leaf(t, "echo.ns.svc", "echo"), ca.Leaf(t, "other.ns.svc")
	secret := func(name string, typ corev1.SecretType, crt, key []byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Type: typ,
			Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}
	}
	objs := []runtime.Object{
		secret("good", corev1.SecretTypeTLS, a.CertPEM, a.KeyPEM),
		secret("opaque", corev1.SecretTypeOpaque, a.CertPEM, a.KeyPEM),
		secret("mismatch", corev1.SecretTypeTLS, a.CertPEM, b.KeyPEM),
		secret("nokey", corev1.SecretTypeTLS, a.CertPEM, nil),
		secret("garbage", corev1.SecretTypeTLS, []byte("not a cert"), a.KeyPEM),
	}
	client := fake.NewClientset(objs...)
	client.PrependReactor("get", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.GetAction).GetName() == "hidden" {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "hidden", nil)
		}
		return false, nil, nil
	})
	for _, tc := range []struct {
		name     string
		now      time.Time
		wantErr  []string
		wantWarn string
	}{
		{name: "good"},
		{name: "good", now: time.Now().Add(48 * time.Hour), wantWarn: "expired"},
		{name: "missing", wantErr: []string{"no such Secret", "kubectl create secret tls missing -n ns"}},
		{name: "hidden", wantErr: []string{"you cannot read Secrets in namespace ns", "get on resource secrets"}},
		{name: "opaque", wantErr: []string{`type "Opaque", not "kubernetes.io/tls"`, "kubectl create secret tls"}},
		{name: "mismatch", wantErr: []string{"not a certificate and its own key", "private key does not match"}},
		{name: "nokey", wantErr: []string{"has no tls.key"}},
		{name: "garbage", wantErr: []string{"not a certificate and its own key"}},
	} {
		t.Run(tc.name+tc.wantWarn, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = time.Now()
			}
			s, warns, err := ReadTLSSecret(context.Background(), client, "ns", tc.name, now)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "BEGIN") {
					t.Errorf("the error shows the Secret's bytes: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(warns, "; "); !strings.Contains(got, tc.wantWarn) || (tc.wantWarn == "" && got != "") {
				t.Errorf("warnings %q, want %q", got, tc.wantWarn)
			}
			if s.Describe() != "Secret good (echo.ns.svc, echo)" || string(s.KeyPEM) != string(a.KeyPEM) {
				t.Errorf("got %s", s.Describe())
			}
		})
	}
}
