package plugin

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// runComplete runs kubectl-tele __complete args, as kubectl_complete-tele
// does, and returns the completions and the directive line.
func runComplete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"__complete"}, args...))
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("__complete %q: %v (stderr: %s)", args, err, errOut.String())
	}
	var comps []string
	directive := ""
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		switch {
		case strings.HasPrefix(line, ":"):
			directive = line
		case line != "":
			// With descriptions, cobra prints NAME\tDESCRIPTION.
			name, _, _ := strings.Cut(line, "\t")
			comps = append(comps, name)
		}
	}
	return comps, directive
}

// isolate keeps the tests away from the developer's kubeconfig and daemon.
func isolate(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("KUBECONFIG", filepath.Join(dir, "kubeconfig"))
	t.Setenv("XDG_RUNTIME_DIR", dir)
	t.Setenv("TMPDIR", dir) // session.DefaultPaths puts the daemon socket there for root
	t.Setenv("HOME", dir)
}

func fakeCluster(t *testing.T, client kubernetes.Interface, err error) {
	t.Helper()
	old := completionClient
	completionClient = func(*genericclioptions.ConfigFlags) (kubernetes.Interface, error) { return client, err }
	t.Cleanup(func() { completionClient = old })
}

func meta(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }

func newFakeClient() *fake.Clientset {
	return fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "staging"}},
		&appsv1.Deployment{ObjectMeta: meta("shop", "web")},
		&appsv1.Deployment{ObjectMeta: meta("shop", "api")},
		&appsv1.StatefulSet{ObjectMeta: meta("shop", "db")},
		&appsv1.ReplicaSet{ObjectMeta: meta("shop", "web-5d9c")},
		&corev1.Pod{ObjectMeta: meta("shop", "web-5d9c-x2p4q")},
		&appsv1.Deployment{ObjectMeta: meta("staging", "other")},
		&appsv1.Deployment{ObjectMeta: meta("default", "in-default")},
	)
}

func TestCompleteSubcommands(t *testing.T) {
	isolate(t)
	got, directive := runComplete(t, "")
	for _, want := range []string{"completion", "connect", "intercept", "leave", "list", "quit", "status", "version"} {
		if !slices.Contains(got, want) {
			t.Errorf("__complete \"\": %v lacks %s", got, want)
		}
	}
	for _, hidden := range []string{"daemon", "helper", "manager", "agent"} {
		if slices.Contains(got, hidden) {
			t.Errorf("__complete \"\": %v offers the hidden command %s", got, hidden)
		}
	}
	if directive != ":4" {
		t.Errorf("directive %q, want :4 (no file completion)", directive)
	}
}

func TestCompleteWorkloads(t *testing.T) {
	isolate(t)
	fakeCluster(t, newFakeClient(), nil)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-n", "shop", "intercept", ""}, []string{
			"deployment/api", "deployment/web", "statefulset/db", "replicaset/web-5d9c", "pod/web-5d9c-x2p4q"}},
		{[]string{"intercept", "--namespace=shop", "deployment/w"}, []string{"deployment/web"}},
		{[]string{"-n", "shop", "intercept", "sts/"}, []string{"sts/db"}},
		{[]string{"-n", "shop", "intercept", "Deploy/a"}, []string{"Deploy/api"}},
		{[]string{"-n", "shop", "intercept", "po/"}, []string{"po/web-5d9c-x2p4q"}},
		{[]string{"-n", "shop", "intercept", "w"}, nil},
		{[]string{"-n", "shop", "intercept", "cronjob/"}, nil},
		{[]string{"-n", "shop", "intercept", "deploy/web", ""}, nil},
		// No -n: the kubeconfig's namespace, here none, so default.
		{[]string{"intercept", ""}, []string{"deployment/in-default"}},
	} {
		got, directive := runComplete(t, tc.args...)
		if !slices.Equal(got, tc.want) {
			t.Errorf("__complete %q = %q, want %q", tc.args, got, tc.want)
		}
		if directive != ":4" {
			t.Errorf("__complete %q: directive %q, want :4", tc.args, directive)
		}
	}
	// After -- CMD, the command's arguments: no workloads, the shell's
	// own completion (:0), files included. The command's name itself
	// gets nothing (see completeWorkloads).
	for _, tc := range []struct {
		args      []string
		directive string
	}{
		{[]string{"-n", "shop", "intercept", "deploy/web", "--port", "8080", "--", "go", ""}, ":0"},
		{[]string{"-n", "shop", "intercept", "deploy/web", "--", "./bin/server", "--config", "./c"}, ":0"},
		{[]string{"-n", "shop", "wiretap", "deploy/web", "--", "sh", "./"}, ":0"},
		{[]string{"-n", "shop", "intercept", "deploy/web", "--", ""}, ":4"},
	} {
		if got, directive := runComplete(t, tc.args...); len(got) != 0 || directive != tc.directive {
			t.Errorf("__complete %q = %q %s, want nothing and %s", tc.args, got, directive, tc.directive)
		}
	}
}

func TestCompleteWorkloadsPartialFailure(t *testing.T) {
	isolate(t)
	client := newFakeClient()
	client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden")
	})
	fakeCluster(t, client, nil)
	got, _ := runComplete(t, "-n", "shop", "intercept", "")
	want := []string{"deployment/api", "deployment/web", "statefulset/db", "replicaset/web-5d9c"}
	if !slices.Equal(got, want) {
		t.Errorf("with pods forbidden: %q, want %q", got, want)
	}
}

func TestCompleteNamespaces(t *testing.T) {
	isolate(t)
	fakeCluster(t, newFakeClient(), nil)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"intercept", "-n", ""}, []string{"default", "shop", "staging"}},
		{[]string{"connect", "--namespace", "s"}, []string{"shop", "staging"}},
		{[]string{"--namespace", "st"}, []string{"staging"}},
	} {
		got, directive := runComplete(t, tc.args...)
		if !slices.Equal(got, tc.want) {
			t.Errorf("__complete %q = %q, want %q", tc.args, got, tc.want)
		}
		if directive != ":4" {
			t.Errorf("__complete %q: directive %q, want :4", tc.args, directive)
		}
	}
}

func TestCompleteClusterUnreachable(t *testing.T) {
	isolate(t)
	fakeCluster(t, nil, errors.New("no kubeconfig"))
	for _, args := range [][]string{{"intercept", ""}, {"-n", ""}} {
		if got, directive := runComplete(t, args...); len(got) != 0 || directive != ":4" {
			t.Errorf("__complete %q without a cluster = %q %s, want nothing and :4", args, got, directive)
		}
	}
}

func TestCompleteContexts(t *testing.T) {
	isolate(t)
	kubeconfig := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {}}]
contexts:
- {name: prod, context: {cluster: c, user: u}}
- {name: dev, context: {cluster: c, user: u}}
current-context: dev
`
	if err := os.WriteFile(os.Getenv("KUBECONFIG"), []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	got, _ := runComplete(t, "status", "--context", "")
	if want := []string{"dev", "prod"}; !slices.Equal(got, want) {
		t.Errorf("--context completions = %q, want %q", got, want)
	}
}

func fakeIntercepts(t *testing.T, f func(context.Context) ([]*teleproto.Intercept, error)) {
	t.Helper()
	old := completionIntercepts
	completionIntercepts = f
	t.Cleanup(func() { completionIntercepts = old })
}

func TestCompleteLeave(t *testing.T) {
	isolate(t)
	fakeIntercepts(t, func(context.Context) ([]*teleproto.Intercept, error) {
		// Another developer's intercepts are in the list too, under
		// their own names or under the caller's.
		return []*teleproto.Intercept{
			{Name: "web", Mine: true}, {Name: "api", Mine: true}, {Name: "web-2", Mine: true},
			{Name: "web", Owner: "bob@laptop"}, {Name: "bobs", Owner: "bob@laptop"},
		}, nil
	})
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"leave", ""}, []string{"api", "web", "web-2"}},
		{[]string{"leave", "we"}, []string{"web", "web-2"}},
		{[]string{"leave", "web", ""}, nil},
	} {
		if got, _ := runComplete(t, tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("__complete %q = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestCompleteLeaveNoDaemon(t *testing.T) {
	// The real lister, on a runtime directory with no daemon in it.
	isolate(t)
	if got, directive := runComplete(t, "leave", ""); len(got) != 0 || directive != ":4" {
		t.Errorf("__complete leave without a daemon = %q %s, want nothing and :4", got, directive)
	}
}

func TestCompleteNeverHangs(t *testing.T) {
	isolate(t)
	old := completionTimeout
	completionTimeout = 200 * time.Millisecond
	t.Cleanup(func() { completionTimeout = old })
	fakeIntercepts(t, func(ctx context.Context) ([]*teleproto.Intercept, error) {
		<-ctx.Done() // a daemon that never answers
		return nil, ctx.Err()
	})
	start := time.Now()
	got, _ := runComplete(t, "leave", "")
	if len(got) != 0 {
		t.Errorf("got %q from a daemon that never answered", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("completion took %s with a %s timeout", d, completionTimeout)
	}
}

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string][]string{
		"bash":       {"# bash completion V2 for kubectl-tele", "__start_kubectl-tele"},
		"zsh":        {"#compdef kubectl-tele"},
		"fish":       {"complete -c kubectl-tele"},
		"powershell": {"Register-ArgumentCompleter", "kubectl-tele"},
	} {
		var out bytes.Buffer
		cmd := NewRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
		cmd.SetArgs([]string{"completion", shell})
		if err := cmd.Execute(); err != nil {
			t.Fatalf("completion %s: %v", shell, err)
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("completion %s: script lacks %q", shell, w)
			}
		}
	}
	cmd := NewRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: new(bytes.Buffer), ErrOut: new(bytes.Buffer)})
	cmd.SetArgs([]string{"completion", "tcsh"})
	if err := cmd.Execute(); err == nil {
		t.Error("completion tcsh: no error")
	}
}
