package target

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery/cached/memory"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// apiResources is the discovery a real cluster serves for the kinds the
// tests name, with kubectl's short names, so the shortcut expander maps
// "deploy" and "sts" as it does against a cluster.
func apiResources() []*metav1.APIResourceList {
	return []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "pods", Namespaced: true, Kind: "Pod", ShortNames: []string{"po"}, Verbs: []string{"get", "list"}},
			{Name: "services", Namespaced: true, Kind: "Service", ShortNames: []string{"svc"}, Verbs: []string{"get", "list"}},
			{Name: "namespaces", Namespaced: false, Kind: "Namespace", ShortNames: []string{"ns"}, Verbs: []string{"get", "list"}},
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
			{Name: "deployments", Namespaced: true, Kind: "Deployment", ShortNames: []string{"deploy"}, Verbs: []string{"get", "list"}},
			{Name: "statefulsets", Namespaced: true, Kind: "StatefulSet", ShortNames: []string{"sts"}, Verbs: []string{"get", "list"}},
			{Name: "replicasets", Namespaced: true, Kind: "ReplicaSet", ShortNames: []string{"rs"}, Verbs: []string{"get", "list"}},
			{Name: "daemonsets", Namespaced: true, Kind: "DaemonSet", ShortNames: []string{"ds"}, Verbs: []string{"get", "list"}},
		}},
		{GroupVersion: "batch/v1", APIResources: []metav1.APIResource{
			{Name: "jobs", Namespaced: true, Kind: "Job", Verbs: []string{"get", "list"}},
			{Name: "cronjobs", Namespaced: true, Kind: "CronJob", ShortNames: []string{"cj"}, Verbs: []string{"get", "list"}},
		}},
	}
}

// fakeAPIServer serves GETs of the objects it holds, by URL path, and the
// API server's NotFound for anything else; it records the paths asked for.
type fakeAPIServer struct {
	objects map[string]runtime.Object
	mu      sync.Mutex
	paths   []string
}

func (s *fakeAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.paths = append(s.paths, r.URL.Path)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if obj, ok := s.objects[r.URL.Path]; ok {
		_ = json.NewEncoder(w).Encode(obj)
		return
	}
	// /api/v1/namespaces/NS/RESOURCE/NAME, /apis/GROUP/V/namespaces/NS/RESOURCE/NAME
	// or /api/v1/namespaces/NAME.
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var gr schema.GroupResource
	if parts[0] == "apis" {
		gr.Group, parts = parts[1], parts[3:]
	} else {
		parts = parts[2:]
	}
	gr.Resource, parts = parts[len(parts)-2], parts[len(parts)-1:]
	status := apierrors.NewNotFound(gr, parts[0]).ErrStatus
	status.Kind, status.APIVersion = "Status", "v1"
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(status)
}

func (s *fakeAPIServer) requested() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.paths...)
}

// newGetter returns a RESTClientGetter whose kubeconfig points at srv with
// namespace "ns" and whose discovery is apiResources.
func newGetter(t *testing.T, srv *fakeAPIServer) genericclioptions.RESTClientGetter {
	t.Helper()
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: ts.URL}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["x"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: "ns"}
	cfg.CurrentContext = "x"
	disc := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: apiResources()}}
	return genericclioptions.NewTestConfigFlags().
		WithClientConfig(clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{})).
		WithDiscoveryClient(memory.NewMemCacheClient(disc))
}

func podTemplate(lbls map[string]string, containers ...corev1.Container) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: lbls},
		Spec:       corev1.PodSpec{Containers: containers},
	}
}

func testObjects() map[string]runtime.Object {
	app := map[string]string{"app": "my-service"}
	tpl := podTemplate(app, corev1.Container{Name: "app", Image: "app"})
	return map[string]runtime.Object{
		"/api/v1/namespaces/ns":    &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: "ns"}},
		"/api/v1/namespaces/other": &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: "other"}},
		"/apis/apps/v1/namespaces/ns/deployments/my-service": &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Name: "my-service", Namespace: "ns", UID: "uid-deploy"},
			Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: app}, Template: tpl},
		},
		"/apis/apps/v1/namespaces/other/deployments/my-service": &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Name: "my-service", Namespace: "other", UID: "uid-other"},
			Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: app}, Template: tpl},
		},
		"/apis/apps/v1/namespaces/ns/statefulsets/db": &appsv1.StatefulSet{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns", UID: "uid-sts"},
			Spec:       appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Template: podTemplate(map[string]string{"app": "db"}, corev1.Container{Name: "db"})},
		},
		"/apis/apps/v1/namespaces/ns/replicasets/my-service-abc": &appsv1.ReplicaSet{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
			ObjectMeta: metav1.ObjectMeta{Name: "my-service-abc", Namespace: "ns", UID: "uid-rs"},
			Spec:       appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "my-service", "pod-template-hash": "abc"}}, Template: tpl},
		},
		"/api/v1/namespaces/ns/pods/my-service-abc-1": &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "my-service-abc-1", Namespace: "ns", UID: "uid-pod", Labels: app},
			Spec:       tpl.Spec,
		},
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		arg, namespace string
		kind, name     string
		uid            string
		selector       string
		wantErr        []string // substrings of the error
		notFound       bool
		noGet          bool // the error must come before any GET of an object
	}{
		{arg: "my-service", kind: "Deployment", name: "my-service", uid: "uid-deploy", selector: "app=my-service"},
		{arg: "deploy/my-service", kind: "Deployment", name: "my-service", uid: "uid-deploy", selector: "app=my-service"},
		{arg: "deployment/my-service", kind: "Deployment", name: "my-service", uid: "uid-deploy"},
		{arg: "deployments/my-service", kind: "Deployment", name: "my-service", uid: "uid-deploy"},
		{arg: "deployments.apps/my-service", kind: "Deployment", name: "my-service", uid: "uid-deploy"},
		{arg: "deployments.v1.apps/my-service", kind: "Deployment", name: "my-service", uid: "uid-deploy"},
		{arg: "Deployment/my-service", kind: "Deployment", name: "my-service", uid: "uid-deploy"},
		{arg: "deploy/my-service", namespace: "other", kind: "Deployment", name: "my-service", uid: "uid-other"},
		{arg: "sts/db", kind: "StatefulSet", name: "db", uid: "uid-sts", selector: "app=db"},
		{arg: "statefulset/db", kind: "StatefulSet", name: "db", uid: "uid-sts"},
		{arg: "rs/my-service-abc", kind: "ReplicaSet", name: "my-service-abc", uid: "uid-rs", selector: "app=my-service,pod-template-hash=abc"},
		{arg: "replicaset.apps/my-service-abc", kind: "ReplicaSet", name: "my-service-abc", uid: "uid-rs"},
		{arg: "pod/my-service-abc-1", kind: "Pod", name: "my-service-abc-1", uid: "uid-pod", selector: "app=my-service"},
		{arg: "po/my-service-abc-1", kind: "Pod", name: "my-service-abc-1", uid: "uid-pod"},
		{arg: "pods/my-service-abc-1", kind: "Pod", name: "my-service-abc-1", uid: "uid-pod"},

		{arg: "deploy/missing", notFound: true,
			wantErr: []string{`deployments.apps "missing" not found in namespace "ns"`, "kubectl tele list -n ns"}},
		{arg: "missing", notFound: true,
			wantErr: []string{`deployments.apps "missing" not found in namespace "ns"`}},
		{arg: "pod/missing", notFound: true, wantErr: []string{`pods "missing" not found in namespace "ns"`}},
		{arg: "deploy/my-service", namespace: "nope", notFound: true,
			wantErr: []string{`namespaces "nope" not found`, "--namespace"}},
		{arg: "svc/my-service", noGet: true,
			wantErr: []string{"cannot intercept service/my-service", "Deployments (deploy/NAME", "StatefulSets (sts/NAME)", "ReplicaSets (rs/NAME)", "Pods (pod/NAME)", "Service's port name"}},
		{arg: "service/my-service", noGet: true, wantErr: []string{"cannot intercept service/my-service"}},
		{arg: "job/migrate", noGet: true, wantErr: []string{"cannot intercept job/migrate", "pod/NAME"}},
		{arg: "cronjob/nightly", noGet: true, wantErr: []string{"cannot intercept cronjob/nightly"}},
		{arg: "cj/nightly", noGet: true, wantErr: []string{"cannot intercept cronjob/nightly"}},
		{arg: "ds/agent", noGet: true, wantErr: []string{"cannot intercept daemonset/agent", "kubectl tele intercepts"}},
		{arg: "frobs/x", noGet: true, wantErr: []string{`the server doesn't have a resource type "frobs"`, "kubectl tele intercepts"}},
		{arg: "deploy/a/b", noGet: true, wantErr: []string{"more than one slash"}},
		{arg: "deploy/", noGet: true, wantErr: []string{"resource/name form"}},
		{arg: "", noGet: true, wantErr: []string{"name the workload"}},
	}
	for _, tt := range tests {
		t.Run(tt.arg+"@"+tt.namespace, func(t *testing.T) {
			srv := &fakeAPIServer{objects: testObjects()}
			w, err := Resolve(context.Background(), newGetter(t, srv), tt.namespace, tt.arg)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Resolve(%q) = %+v, want an error", tt.arg, w)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				if got := apierrors.IsNotFound(err); got != tt.notFound {
					t.Errorf("IsNotFound(%v) = %v, want %v", err, got, tt.notFound)
				}
				if tt.noGet && len(srv.requested()) > 0 {
					t.Errorf("an unsupported argument fetched %v", srv.requested())
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.arg, err)
			}
			ns := tt.namespace
			if ns == "" {
				ns = "ns" // the kubeconfig's
			}
			if w.Kind != tt.kind || w.Name != tt.name || w.Namespace != ns || string(w.UID) != tt.uid {
				t.Errorf("got %s %s/%s uid %s, want %s %s/%s uid %s", w.Kind, w.Namespace, w.Name, w.UID, tt.kind, ns, tt.name, tt.uid)
			}
			if tt.selector != "" && w.Selector.String() != tt.selector {
				t.Errorf("selector %q, want %q", w.Selector, tt.selector)
			}
			if len(w.Template.Containers) == 0 || w.Object == nil || len(w.TemplateLabels) == 0 {
				t.Errorf("template, labels or object missing: %+v", w)
			}
		})
	}
}

func TestWorkloadFromObject(t *testing.T) {
	sel := &metav1.LabelSelector{
		MatchLabels:      map[string]string{"app": "echo"},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"web"}}},
	}
	tpl := podTemplate(map[string]string{"app": "echo", "tier": "web"}, corev1.Container{Name: "echo"})
	meta := metav1.ObjectMeta{Name: "echo", Namespace: "ns", UID: "u1"}
	unstructuredDeploy := func() runtime.Object {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&appsv1.Deployment{
			TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: meta,
			Spec: appsv1.DeploymentSpec{Selector: sel, Template: tpl},
		})
		if err != nil {
			t.Fatal(err)
		}
		return &unstructured.Unstructured{Object: m}
	}
	tests := []struct {
		name     string
		obj      runtime.Object
		kind     string
		selector string
		wantErr  string
	}{
		{"deployment", &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Selector: sel, Template: tpl}}, "Deployment", "app=echo,tier in (web)", ""},
		{"statefulset", &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Selector: sel, Template: tpl}}, "StatefulSet", "app=echo,tier in (web)", ""},
		{"replicaset", &appsv1.ReplicaSet{ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: tpl}}, "ReplicaSet", "app=echo,tier in (web)", ""},
		{"pod", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Labels: map[string]string{"app": "echo"}}, Spec: tpl.Spec}, "Pod", "app=echo", ""},
		{"unstructured", unstructuredDeploy(), "Deployment", "app=echo,tier in (web)", ""},
		{"no selector", &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Template: tpl}}, "", "", "deployment/echo has no pod selector"},
		{"empty selector", &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{}, Template: tpl}}, "", "", "no pod selector"},
		{"bad selector", &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Near"}}}, Template: tpl}}, "", "", "invalid label selector"},
		{"job", &batchv1.Job{ObjectMeta: meta}, "", "", "kubectl tele intercepts Deployments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := workloadFromObject(tt.obj)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.Kind != tt.kind || w.Selector.String() != tt.selector {
				t.Errorf("got %s %q, want %s %q", w.Kind, w.Selector, tt.kind, tt.selector)
			}
			if w.Template.Containers[0].Name != "echo" || w.TemplateLabels["app"] != "echo" {
				t.Errorf("template not copied: %+v", w)
			}
		})
	}
}

func TestRunningPod(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "echo"}}
	w, err := workloadFromObject(&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: "ns"},
		Spec:       appsv1.DeploymentSpec{Selector: sel, Template: podTemplate(sel.MatchLabels, corev1.Container{Name: "echo"})},
	})
	if err != nil {
		t.Fatal(err)
	}
	pod := func(name string, phase corev1.PodPhase, ready bool, restarts int32, age int64) *corev1.Pod {
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "echo"},
				CreationTimestamp: metav1.Unix(1000-age, 0)},
			Status: corev1.PodStatus{Phase: phase, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "echo", RestartCount: restarts}}},
		}
	}
	tests := []struct {
		name    string
		pods    []runtime.Object
		want    string
		wantErr string
	}{
		{"ready beats not ready", []runtime.Object{pod("a", corev1.PodRunning, false, 0, 100), pod("b", corev1.PodRunning, true, 0, 1)}, "b", ""},
		{"fewer restarts", []runtime.Object{pod("a", corev1.PodRunning, true, 3, 100), pod("b", corev1.PodRunning, true, 0, 1)}, "b", ""},
		{"oldest", []runtime.Object{pod("a", corev1.PodRunning, true, 0, 1), pod("b", corev1.PodRunning, true, 0, 100)}, "b", ""},
		{"pending skipped", []runtime.Object{pod("a", corev1.PodPending, false, 0, 100), pod("b", corev1.PodRunning, false, 0, 1)}, "b", ""},
		{"none running", []runtime.Object{pod("a", corev1.PodPending, false, 0, 100)}, "", "deployment/echo has no running pod (1 pods match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := RunningPod(context.Background(), fake.NewClientset(tt.pods...), w)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != tt.want {
				t.Errorf("picked %s, want %s", p.Name, tt.want)
			}
		})
	}
}
