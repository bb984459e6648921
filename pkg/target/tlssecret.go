package target

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TLSSecret is the certificate and key of a kubernetes.io/tls Secret, as
// checked by ReadTLSSecret.
type TLSSecret struct {
	Name            string
	CertPEM, KeyPEM []byte
	// Names are the certificate's DNS names (or its common name), for
	// messages.
	Names []string
}

// ReadTLSSecret reads the kubernetes.io/tls Secret name of namespace ns with
// the caller's own credentials, and checks that its tls.crt and tls.key are
// a certificate and its key. Errors say what to do; none holds the
// Secret's bytes. Warnings (an expired certificate) do not stop the
// intercept: the clients decide whether they accept it.
//
// The laptop reads it, not the manager: the manager's Role then needs no
// access to Secrets, and a user who may not read a Secret cannot use it.
func ReadTLSSecret(ctx context.Context, client kubernetes.Interface, ns, name string, now time.Time) (*TLSSecret, []string, error) {
	create := fmt.Sprintf("kubectl create secret tls %s -n %s --cert=CERT.pem --key=KEY.pem", name, ns)
	sec, err := client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil, fmt.Errorf("--tls-secret %s: no such Secret in namespace %s; create it from the certificate the app's clients expect: %s", name, ns, create)
	case apierrors.IsForbidden(err):
		return nil, nil, fmt.Errorf("--tls-secret %s: you cannot read Secrets in namespace %s (you need the verb get on resource secrets there): intercept reads it with your own credentials, so ask for that access, or use a Secret you may read", name, ns)
	case err != nil:
		return nil, nil, fmt.Errorf("--tls-secret %s: get Secret %s/%s: %w", name, ns, name, err)
	}
	if sec.Type != corev1.SecretTypeTLS {
		return nil, nil, fmt.Errorf("--tls-secret %s: Secret %s/%s is of type %q, not %q; make one from the certificate and key: %s", name, ns, name, sec.Type, corev1.SecretTypeTLS, create)
	}
	crt, key := sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]
	for k, v := range map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key} {
		if len(v) == 0 {
			return nil, nil, fmt.Errorf("--tls-secret %s: Secret %s/%s has no %s; make it again: %s", name, ns, name, k, create)
		}
	}
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		// crypto/tls's errors name the problem, never the bytes.
		return nil, nil, fmt.Errorf("--tls-secret %s: the tls.crt and tls.key of Secret %s/%s are not a certificate and its own key (%v); make it again from the right pair: %s", name, ns, name, err, create)
	}
	leaf := pair.Leaf
	names := leaf.DNSNames
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = []string{leaf.Subject.CommonName}
	}
	var warnings []string
	switch {
	case now.After(leaf.NotAfter):
		warnings = append(warnings, fmt.Sprintf("the certificate of Secret %s expired on %s: clients that check it refuse the intercepted port", name, leaf.NotAfter.UTC().Format(time.RFC3339)))
	case now.Before(leaf.NotBefore):
		warnings = append(warnings, fmt.Sprintf("the certificate of Secret %s is valid only from %s: clients that check it refuse the intercepted port until then", name, leaf.NotBefore.UTC().Format(time.RFC3339)))
	}
	return &TLSSecret{Name: name, CertPEM: crt, KeyPEM: key, Names: names}, warnings, nil
}

// Describe names the Secret and the names its certificate is for.
func (s *TLSSecret) Describe() string {
	if len(s.Names) == 0 {
		return "Secret " + s.Name
	}
	return fmt.Sprintf("Secret %s (%s)", s.Name, strings.Join(s.Names, ", "))
}
