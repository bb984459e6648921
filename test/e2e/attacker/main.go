//go:build e2e

// Command attacker is the e2e tests' intruder: a client written against
// pkg/teleproto, as someone would write one who may only port-forward to
// the manager's pod. It reaches the manager through the API server with
// its kubeconfig, and tries, printing one line per try ("NAME: CODE:
// MESSAGE", or "NAME: OK ..."):
//
//   - intercept: arrive with its own client certificate, honestly, and
//     create an intercept of every pod labelled -app, and of its Service;
//   - forged: arrive with the certificate and key of -forged-cert and
//     -forged-key (one a CA of its own signed);
//   - replay: arrive twice with the same proof;
//   - guessed-nonce: arrive with a nonce the manager did not give.
package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "")
	ns := flag.String("namespace", "", "")
	app := flag.String("app", "echo", "")
	forgedCert := flag.String("forged-cert", "", "")
	forgedKey := flag.String("forged-key", "", "")
	flag.Parse()
	if err := run(*kubeconfig, *ns, *app, *forgedCert, *forgedKey); err != nil {
		fmt.Fprintln(os.Stderr, "attacker:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, ns, app, forgedCert, forgedKey string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + managerclient.Name})
	if err != nil || len(pods.Items) == 0 {
		return fmt.Errorf("find the manager pod: %v (%d pods)", err, len(pods.Items))
	}
	pod := pods.Items[0]
	pf, err := managerclient.DialPortForward(ctx, cfg, cs, ns, pod.Name, teleproto.ManagerPort)
	if err != nil {
		return err
	}
	defer pf.Close()
	conn, err := grpc.NewClient("passthrough:///manager", grpc.WithContextDialer(pf.Dial), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := teleproto.NewManagerClient(conn)

	own, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData)
	if err != nil {
		return fmt.Errorf("own certificate: %w", err)
	}
	// proof signs the manager's statement for a fresh nonce with cert.
	proof := func(cert tls.Certificate) (*teleproto.ArriveRequest, error) {
		ch, err := c.Challenge(ctx, &teleproto.ChallengeRequest{}, grpc.WaitForReady(true))
		if err != nil {
			return nil, err
		}
		sig, err := teleproto.SignStatement(cert.PrivateKey.(crypto.Signer), teleproto.ProofStatement(string(pod.UID), ns, ch.GetNonce()))
		if err != nil {
			return nil, err
		}
		return &teleproto.ArriveRequest{ProtocolVersion: teleproto.CurrentProtocolVersion, ClientVersion: "attacker", Hostname: "nowhere", User: "alice", Namespace: ns,
			Proof: &teleproto.Proof{Nonce: ch.GetNonce(), Credential: &teleproto.Proof_ClientCertificate{ClientCertificate: &teleproto.ClientCertificateProof{ChainDer: cert.Certificate, Signature: sig}}}}, nil
	}
	report := func(name string, err error, ok string) {
		if err != nil {
			s := status.Convert(err)
			fmt.Printf("%s: %s: %s\n", name, s.Code(), s.Message())
			return
		}
		fmt.Printf("%s: OK %s\n", name, ok)
	}

	req, err := proof(own)
	if err != nil {
		return err
	}
	resp, err := c.Arrive(ctx, req)
	if err != nil {
		report("intercept", err, "")
	} else {
		fmt.Printf("arrived as %s\n", resp.GetIdentity().GetUsername())
		_, err = c.CreateIntercept(ctx, &teleproto.CreateInterceptRequest{
			SessionId: resp.GetSessionId(), Name: "mallory-" + app, WorkloadKind: "Deployment", WorkloadName: app, Port: 8080, LocalPort: 7070,
			Target: &teleproto.InterceptTarget{
				Pods:         &teleproto.InterceptTarget_Selector{Selector: &teleproto.LabelSelector{MatchLabels: map[string]string{"app": app}}},
				ServicePorts: []*teleproto.ServicePortRef{{Service: app, Name: "http", Port: 8080, TargetPort: "http"}},
			},
		})
		report("intercept", err, "created")
		_, _ = c.Depart(ctx, &teleproto.SessionRequest{SessionId: resp.GetSessionId()})
	}

	if forgedCert != "" {
		forged, err := tls.LoadX509KeyPair(forgedCert, forgedKey)
		if err != nil {
			return fmt.Errorf("forged certificate: %w", err)
		}
		req, err := proof(forged)
		if err != nil {
			return err
		}
		resp, err := c.Arrive(ctx, req)
		report("forged", err, "as "+resp.GetIdentity().GetUsername())
	}

	req, err = proof(own)
	if err != nil {
		return err
	}
	if resp, err := c.Arrive(ctx, req); err == nil {
		_, _ = c.Depart(ctx, &teleproto.SessionRequest{SessionId: resp.GetSessionId()})
	}
	resp, err = c.Arrive(ctx, req)
	report("replay", err, "as "+resp.GetIdentity().GetUsername())

	req, err = proof(own)
	if err != nil {
		return err
	}
	guess := make([]byte, teleproto.NonceSize)
	_, _ = rand.Read(guess)
	req.Proof.Nonce = guess
	resp, err = c.Arrive(ctx, req)
	report("guessed-nonce", err, "as "+resp.GetIdentity().GetUsername())
	return nil
}
