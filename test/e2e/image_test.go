//go:build e2e

package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The cluster's registries (hack/kind/lib.sh: REGISTRY, AUTH_REGISTRY).
const (
	openRegistry = "10.201.0.1:5000"
	authRegistry = "10.201.0.1:5001"
)

var (
	clusterCA       = filepath.Join(kindDir, ".cluster", "pki", "ca.crt")
	authDockerCfg   = filepath.Join(kindDir, ".cluster", "registry", "auth", "docker")
	imageLine       = regexp.MustCompile(`(?m)^Image: (\S+)$`)
	copiedDigest    = regexp.MustCompile(`@(sha256:[0-9a-f]{64})`)
	wantedPlatforms = []string{"linux/amd64", "linux/arm64"}
)

// buildImage is the image reference the plugin under test deploys by default.
func buildImage(t *testing.T) string {
	t.Helper()
	installPlugin(t)
	out, err := exec.Command(teleBin, "version").CombinedOutput()
	m := imageLine.FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("kubectl tele version: %v\n%s", err, out)
	}
	return string(m[1])
}

// registryOptions reach the cluster's registries as the host does: the
// cluster CA, and the credentials of the authenticated one.
func registryOptions(t *testing.T) []remote.Option {
	t.Helper()
	pem, err := os.ReadFile(clusterCA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs = pool
	t.Setenv("DOCKER_CONFIG", authDockerCfg)
	return []remote.Option{remote.WithTransport(tr), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
}

// indexPlatforms returns the digest of the index at ref and its platforms.
func indexPlatforms(t *testing.T, ref string, opts []remote.Option) (string, []string) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r, opts...)
	if err != nil {
		t.Fatalf("index %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, desc := range m.Manifests {
		if desc.Platform != nil {
			plats = append(plats, desc.Platform.OS+"/"+desc.Platform.Architecture)
		}
	}
	return d.String(), plats
}

func hasPlatforms(got []string) bool {
	for _, w := range wantedPlatforms {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			return false
		}
	}
	return true
}

// managerPodImage returns the image and image ID the manager pod runs.
func (c *cluster) managerPodImage(t *testing.T, ctx context.Context, ns string) (string, string) {
	t.Helper()
	pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + managerJob})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("manager pod in %s: %v (%d pods)", ns, err, len(pods.Items))
	}
	p := pods.Items[0]
	if len(p.Status.ContainerStatuses) == 0 {
		t.Fatalf("manager pod %s has no container status", p.Name)
	}
	return p.Spec.Containers[0].Image, p.Status.ContainerStatuses[0].ImageID
}

// nodeHasImage says whether the node's containerd knows ref by that name:
// it pulled it through that registry (the image ID names the repository the
// content first came from, and the content is shared by digest).
func nodeHasImage(t *testing.T, ref string) bool {
	t.Helper()
	out, err := exec.Command("ctr", "--address", "/run/tele-kind/containerd.sock", "--namespace", "k8s.io", "images", "ls", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr images ls: %v\n%s", err, out)
	}
	for _, l := range strings.Fields(string(out)) {
		if l == ref {
			return true
		}
	}
	t.Logf("the node's images:\n%s", out)
	return false
}

// TestImage: the image this build deploys is an index of both platforms in
// the cluster's registry, and the manager's pod is pulled from there, as on a
// user's cluster: nothing is imported into the node by hand.
func TestImage(t *testing.T) {
	c := newCluster(t)
	ctx := ctxFor(t, 5*time.Minute)
	img := buildImage(t)
	if !strings.HasPrefix(img, openRegistry+"/") {
		t.Fatalf("a local build must deploy from the cluster's registry %s, not %s", openRegistry, img)
	}
	digest, plats := indexPlatforms(t, img, registryOptions(t))
	t.Logf("%s is %s with %v", img, digest, plats)
	if !hasPlatforms(plats) {
		t.Fatalf("index %s has platforms %v, want %v", img, plats, wantedPlatforms)
	}

	ns := c.namespace(t, "image", nil)
	l := newLaptop(t, 30)
	u := newTeleUser(t, 30, nil)
	dumpLogs(t, u)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	image, id := c.managerPodImage(t, ctx, ns)
	t.Logf("manager pod runs %s (%s)", image, id)
	if image != img || !strings.HasPrefix(id, openRegistry+"/kubectl-tele@sha256:") {
		t.Fatalf("manager pod runs %s (%s), want %s pulled from %s", image, id, img, openRegistry)
	}
}

// TestPrivateRegistry: a team copies the image into a registry that needs a
// login, connects with --registry and --image-pull-secret, and intercepts a
// workload whose pods have the secret; a workload whose pods lack it is
// refused at once with what to do, and nothing is changed in it.
func TestPrivateRegistry(t *testing.T) {
	c := newCluster(t)
	ctx := ctxFor(t, 10*time.Minute)
	img := buildImage(t)
	opts := registryOptions(t)
	srcDigest, _ := indexPlatforms(t, img, opts)
	repo := authRegistry + "/team/kubectl-tele"

	// Without credentials the registry refuses: it is really private.
	if r, err := name.ParseReference(img); err == nil {
		anon, _ := name.ParseReference(repo + ":" + r.Identifier())
		if _, err := remote.Index(anon, opts[0]); err == nil {
			t.Fatalf("%s reachable without credentials", anon)
		}
	}

	t.Run("image copy", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, teleBin, "image", "copy", "--to", repo)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+authDockerCfg, "SSL_CERT_FILE="+clusterCA)
		out, err := cmd.CombinedOutput()
		t.Logf("image copy:\n%s", out)
		if err != nil {
			t.Fatalf("image copy: %v", err)
		}
		m := copiedDigest.FindSubmatch(out)
		if m == nil || string(m[1]) != srcDigest {
			t.Fatalf("image copy printed digest %q, want the source's %s", m, srcDigest)
		}
		tag := img[strings.LastIndex(img, ":"):]
		digest, plats := indexPlatforms(t, repo+tag, opts)
		if digest != srcDigest || !hasPlatforms(plats) {
			t.Fatalf("%s%s is %s %v, want %s with %v", repo, tag, digest, plats, srcDigest, wantedPlatforms)
		}
	})
	if t.Failed() {
		return
	}

	ns := c.namespace(t, "private", nil)
	cfg, err := os.ReadFile(filepath.Join(authDockerCfg, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "team-registry"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: cfg},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// "plain" runs without the secret; then the namespace's default
	// ServiceAccount gets it, as teams often do, and "private" has it.
	c.deployEcho(t, ns, "plain", 1)
	sa, err := c.client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: "team-registry"})
	if _, err := c.client.CoreV1().ServiceAccounts(ns).Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.deployEcho(t, ns, "private", 1)

	l := newLaptop(t, 31)
	u := newTeleUser(t, 31, nil)
	dumpLogs(t, u)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns, "--registry", authRegistry+"/team", "--image-pull-secret", "team-registry"); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	image, id := c.managerPodImage(t, ctx, ns)
	if !strings.HasPrefix(image, repo+":") || !strings.HasSuffix(id, "@"+srcDigest) || !nodeHasImage(t, image) {
		t.Fatalf("manager pod runs %s (%s), want it pulled from %s", image, id, repo)
	}
	l.localServer(t, u, 7070, "LAPTOP-PRIVATE")

	t.Run("pods without the secret are refused, unchanged", func(t *testing.T) {
		before := c.podsOf(t, ns, "plain")[0]
		start := time.Now()
		out, err := l.tele(ctx, u, "intercept", "deploy/plain", "--port", "7070:8080")
		t.Logf("intercept said (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
		if err == nil {
			t.Fatal("intercept of a workload whose pods cannot pull the agent succeeded")
		}
		for _, want := range []string{"team-registry", "imagePullSecrets", "nothing was changed"} {
			if !strings.Contains(out, want) {
				t.Errorf("message does not say %q", want)
			}
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("took %s: a pod that cannot pull the agent must be refused at once", d)
		}
		after := c.podsOf(t, ns, "plain")[0]
		if after.UID != before.UID || len(after.Spec.EphemeralContainers) != 0 {
			t.Errorf("pod %s changed: uid %s -> %s, %d ephemeral containers", before.Name, before.UID, after.UID, len(after.Spec.EphemeralContainers))
		}
		if list, _ := l.tele(ctx, u, "list", "-i"); strings.Contains(list, "plain") {
			t.Errorf("an intercept of plain is listed:\n%s", list)
		}
	})

	t.Run("pods with the secret pull the agent", func(t *testing.T) {
		// The manager's pull left the image on this one node: forget it, so
		// the agent is pulled again, with its pod's secret.
		if out, err := exec.Command("ctr", "--address", "/run/tele-kind/containerd.sock", "--namespace", "k8s.io", "images", "rm", image).CombinedOutput(); err != nil {
			t.Fatalf("ctr images rm %s: %v\n%s", image, err, out)
		}
		out, err := l.tele(ctx, u, "intercept", "deploy/private", "--port", "7070:8080")
		if err != nil {
			t.Fatalf("intercept: %v\n%s", err, out)
		}
		// The spec names the image; the status may name another tag of the
		// same digest (containerd reports the first name it knows).
		pod := c.podsOf(t, ns, "private")[0]
		running := false
		for _, e := range pod.Spec.EphemeralContainers {
			for _, st := range pod.Status.EphemeralContainerStatuses {
				if st.Name == e.Name && strings.HasPrefix(e.Image, repo+":") && st.State.Running != nil && strings.HasSuffix(st.ImageID, "@"+srcDigest) {
					running = true
				}
			}
		}
		if !running {
			b, _ := json.Marshal(pod.Spec.EphemeralContainers)
			t.Fatalf("no agent of %s running: %s", repo, b)
		}
		if !nodeHasImage(t, image) {
			t.Errorf("the agent's image %s was not pulled again", image)
		}
		if who := served(t, c, ns, "http://private:8080/"); len(who) != 1 || who[0] != "LAPTOP-PRIVATE" {
			t.Fatalf("request to the intercepted workload answered by %v", who)
		}
		if out, err := l.tele(ctx, u, "leave", "private"); err != nil {
			t.Fatalf("leave: %v\n%s", err, out)
		}
	})
}
