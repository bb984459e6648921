package target

import (
	"context"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"VAR": "value", "EMPTY": "", "URL": "http://$(HOST)"}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	// Cases from the kubelet's expansion tests, which define the behaviour.
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"$(VAR)", "value"},
		{"a$(VAR)b", "avalueb"},
		{"$(VAR)$(VAR)", "valuevalue"},
		{"$(EMPTY)", ""},
		{"$(UNKNOWN)", "$(UNKNOWN)"},
		{"x$(UNKNOWN)y$(VAR)", "x$(UNKNOWN)yvalue"},
		{"$$(VAR)", "$(VAR)"},
		{"$$$(VAR)", "$value"},
		{"$$$$(VAR)", "$$(VAR)"},
		{"$$", "$"},
		{"$", "$"},
		{"a$", "a$"},
		{"$VAR", "$VAR"},
		{"${VAR}", "${VAR}"},
		{"$(VAR", "$(VAR"},
		{"$(", "$("},
		{"$()", "$()"},
		{"$(URL)", "http://$(HOST)"}, // no recursion
		{"$(VAR)$", "value$"},
		{"$(VA$(VAR)R)", "$(VA$(VAR)R)"},
		{"é$(VAR)ü$ä", "évalueü$ä"},
	}
	for _, tt := range tests {
		if got := Expand(tt.in, lookup); got != tt.want {
			t.Errorf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestEnv(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app-config", Namespace: "ns"},
		Data: map[string]string{"LOG_LEVEL": "debug", "DB_HOST": "db.ns", "SHARED": "from-cm"}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-secret", Namespace: "ns"},
		Data: map[string][]byte{"password": []byte("s3cr3t\n"), "SHARED": []byte("from-secret")}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
		corev1.ResourceCPU: apiresource.MustParse("4"), corev1.ResourceMemory: apiresource.MustParse("8Gi")}}}
	kube := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []corev1.ServicePort{{Name: "https", Port: 443}}}}
	dbSvc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "my-db", Namespace: "ns"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.5.5", Ports: []corev1.ServicePort{{Port: 5432}, {Name: "metrics", Port: 9187}}}}
	headless := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "headless", Namespace: "ns"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Port: 1}}}}

	pod := func(c corev1.Container) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Namespace: "ns", UID: "pod-uid",
				Labels:      map[string]string{"app": "echo", "tier": "web"},
				Annotations: map[string]string{"team": "core"}},
			Spec: corev1.PodSpec{NodeName: "node-1", ServiceAccountName: "echo-sa", EnableServiceLinks: ptr(false),
				Containers: []corev1.Container{c}},
			Status: corev1.PodStatus{PodIP: "10.1.2.3", PodIPs: []corev1.PodIP{{IP: "10.1.2.3"}, {IP: "fd00::3"}},
				HostIP: "192.0.2.1", HostIPs: []corev1.HostIP{{IP: "192.0.2.1"}}},
		}
	}
	env := func(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	cmKey := func(name, cmName, key string, optional bool) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: cmName}, Key: key, Optional: ptr(optional)}}}
	}
	secretKey := func(name, sName, key string, optional bool) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: sName}, Key: key, Optional: ptr(optional)}}}
	}
	res := func(name, resource, divisor string) corev1.EnvVar {
		sel := &corev1.ResourceFieldSelector{Resource: resource}
		if divisor != "" {
			sel.Divisor = apiresource.MustParse(divisor)
		}
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: sel}}
	}
	fromCM := func(name, prefix string, optional bool) corev1.EnvFromSource {
		return corev1.EnvFromSource{Prefix: prefix, ConfigMapRef: &corev1.ConfigMapEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: ptr(optional)}}
	}
	fromSecret := func(name, prefix string, optional bool) corev1.EnvFromSource {
		return corev1.EnvFromSource{Prefix: prefix, SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: ptr(optional)}}
	}

	tests := []struct {
		name    string
		c       corev1.Container
		links   bool // spec.enableServiceLinks
		want    []EnvVar
		wantErr []string
	}{
		{name: "literal", c: corev1.Container{Env: []corev1.EnvVar{env("A", "1"), env("EMPTY", "")}},
			want: []EnvVar{{"A", "1"}, {"EMPTY", ""}}},
		{name: "configmap key", c: corev1.Container{Env: []corev1.EnvVar{cmKey("LEVEL", "app-config", "LOG_LEVEL", false)}},
			want: []EnvVar{{"LEVEL", "debug"}}},
		{name: "secret key", c: corev1.Container{Env: []corev1.EnvVar{secretKey("PASSWORD", "app-secret", "password", false)}},
			want: []EnvVar{{"PASSWORD", "s3cr3t\n"}}},
		{name: "field refs", c: corev1.Container{Env: []corev1.EnvVar{
			field("POD_NAME", "metadata.name"), field("POD_NAMESPACE", "metadata.namespace"), field("POD_UID", "metadata.uid"),
			field("POD_IP", "status.podIP"), field("POD_IPS", "status.podIPs"), field("HOST_IP", "status.hostIP"),
			field("NODE", "spec.nodeName"), field("SA", "spec.serviceAccountName"),
			field("APP", "metadata.labels['app']"), field("TEAM", "metadata.annotations['team']"),
			field("NOPE", "metadata.labels['missing']"), field("LABELS", "metadata.labels"),
		}}, want: []EnvVar{{"POD_NAME", "echo-1"}, {"POD_NAMESPACE", "ns"}, {"POD_UID", "pod-uid"},
			{"POD_IP", "10.1.2.3"}, {"POD_IPS", "10.1.2.3,fd00::3"}, {"HOST_IP", "192.0.2.1"},
			{"NODE", "node-1"}, {"SA", "echo-sa"}, {"APP", "echo"}, {"TEAM", "core"}, {"NOPE", ""},
			{"LABELS", "app=\"echo\"\ntier=\"web\""}}},
		{name: "unsupported field", c: corev1.Container{Env: []corev1.EnvVar{field("X", "spec.hostname")}},
			wantErr: []string{"env X", `unsupported fieldPath: spec.hostname`}},
		{name: "resource refs", c: corev1.Container{
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: apiresource.MustParse("1500m")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: apiresource.MustParse("250m"), corev1.ResourceMemory: apiresource.MustParse("64Mi")},
			},
			Env: []corev1.EnvVar{res("CPU_LIMIT", "limits.cpu", ""), res("CPU_REQ_M", "requests.cpu", "1m"),
				res("MEM_REQ_MI", "requests.memory", "1Mi"), res("MEM_LIMIT_GI", "limits.memory", "1Gi")}},
			want: []EnvVar{{"CPU_LIMIT", "2"}, {"CPU_REQ_M", "250"}, {"MEM_REQ_MI", "64"}, {"MEM_LIMIT_GI", "8"}}},
		{name: "envFrom with prefix", c: corev1.Container{EnvFrom: []corev1.EnvFromSource{fromCM("app-config", "CFG_", false), fromSecret("app-secret", "S_", false)}},
			want: []EnvVar{{"CFG_DB_HOST", "db.ns"}, {"CFG_LOG_LEVEL", "debug"}, {"CFG_SHARED", "from-cm"}, {"S_SHARED", "from-secret"}, {"S_password", "s3cr3t\n"}}},
		{name: "precedence: later envFrom, then env win", c: corev1.Container{
			EnvFrom: []corev1.EnvFromSource{fromCM("app-config", "", false), fromSecret("app-secret", "", false)},
			Env:     []corev1.EnvVar{env("LOG_LEVEL", "info"), env("A", "1"), env("A", "2")}},
			want: []EnvVar{{"DB_HOST", "db.ns"}, {"LOG_LEVEL", "info"}, {"SHARED", "from-secret"}, {"password", "s3cr3t\n"}, {"A", "2"}}},
		{name: "expansion", c: corev1.Container{
			EnvFrom: []corev1.EnvFromSource{fromCM("app-config", "", false)},
			Env: []corev1.EnvVar{env("HOST", "$(DB_HOST)"), env("URL", "postgres://$(HOST):5432/$(DB)"), env("DB", "app"),
				env("ESC", "$$(HOST)"), field("NAME", "metadata.name"), env("GREETING", "hi $(NAME)")}},
			want: []EnvVar{{"DB_HOST", "db.ns"}, {"LOG_LEVEL", "debug"}, {"SHARED", "from-cm"},
				{"HOST", "db.ns"}, {"URL", "postgres://db.ns:5432/$(DB)"}, {"DB", "app"}, {"ESC", "$(HOST)"},
				{"NAME", "echo-1"}, {"GREETING", "hi echo-1"}}},
		{name: "optional missing skipped", c: corev1.Container{
			EnvFrom: []corev1.EnvFromSource{fromCM("nope", "", true), fromSecret("nope", "", true), fromCM("app-config", "", false)},
			Env: []corev1.EnvVar{cmKey("LOG_LEVEL", "app-config", "missing-key", true), cmKey("B", "nope", "k", true),
				secretKey("C", "app-secret", "missing-key", true), secretKey("D", "nope", "k", true), env("E", "e")}},
			want: []EnvVar{{"DB_HOST", "db.ns"}, {"LOG_LEVEL", "debug"}, {"SHARED", "from-cm"}, {"E", "e"}}},
		{name: "required configmap key missing", c: corev1.Container{Env: []corev1.EnvVar{cmKey("X", "app-config", "missing-key", false)}},
			wantErr: []string{"env X", `ConfigMap ns/app-config has no key "missing-key"`}},
		{name: "required secret key missing", c: corev1.Container{Env: []corev1.EnvVar{secretKey("X", "app-secret", "missing-key", false)}},
			wantErr: []string{"env X", `Secret ns/app-secret has no key "missing-key"`}},
		{name: "required configmap missing", c: corev1.Container{Env: []corev1.EnvVar{cmKey("X", "nope", "k", false)}},
			wantErr: []string{"env X: read ConfigMap ns/nope", "not found"}},
		{name: "required secret missing after optional", c: corev1.Container{
			EnvFrom: []corev1.EnvFromSource{fromSecret("nope", "", true)}, Env: []corev1.EnvVar{secretKey("X", "nope", "k", false)}},
			wantErr: []string{"env X: read Secret ns/nope", "not found"}},
		{name: "required envFrom missing", c: corev1.Container{EnvFrom: []corev1.EnvFromSource{fromCM("nope", "", false)}},
			wantErr: []string{"envFrom: read ConfigMap ns/nope"}},
		{name: "service links", links: true, c: corev1.Container{Env: []corev1.EnvVar{env("DB", "$(MY_DB_SERVICE_HOST)"), env("MY_DB_PORT", "mine")}},
			want: []EnvVar{{"DB", "10.96.5.5"}, {"MY_DB_PORT", "mine"},
				{"KUBERNETES_PORT", "tcp://10.96.0.1:443"}, {"KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"},
				{"KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"}, {"KUBERNETES_PORT_443_TCP_PORT", "443"}, {"KUBERNETES_PORT_443_TCP_PROTO", "tcp"},
				{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}, {"KUBERNETES_SERVICE_PORT_HTTPS", "443"},
				{"MY_DB_PORT_5432_TCP", "tcp://10.96.5.5:5432"}, {"MY_DB_PORT_5432_TCP_ADDR", "10.96.5.5"},
				{"MY_DB_PORT_5432_TCP_PORT", "5432"}, {"MY_DB_PORT_5432_TCP_PROTO", "tcp"},
				{"MY_DB_PORT_9187_TCP", "tcp://10.96.5.5:9187"}, {"MY_DB_PORT_9187_TCP_ADDR", "10.96.5.5"},
				{"MY_DB_PORT_9187_TCP_PORT", "9187"}, {"MY_DB_PORT_9187_TCP_PROTO", "tcp"},
				{"MY_DB_SERVICE_HOST", "10.96.5.5"}, {"MY_DB_SERVICE_PORT", "5432"}, {"MY_DB_SERVICE_PORT_METRICS", "9187"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.Name = "echo"
			p := pod(tt.c)
			objs := []runtime.Object{cm, secret, node, dbSvc, headless}
			if tt.links {
				p.Spec.EnableServiceLinks = ptr(true)
				objs = append(objs, kube)
			}
			got, err := Env(context.Background(), fake.NewClientset(objs...), p, "")
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Env = %v, want an error", got)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Env =\n  %q\nwant\n  %q", got, tt.want)
			}
		})
	}
}

func TestEnvContainerChoice(t *testing.T) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: corev1.PodSpec{EnableServiceLinks: ptr(false), Containers: []corev1.Container{
			{Name: "app", Env: []corev1.EnvVar{{Name: "WHO", Value: "app"}}},
			{Name: "proxy", Env: []corev1.EnvVar{{Name: "WHO", Value: "proxy"}}},
		}, InitContainers: []corev1.Container{{Name: "sidecar", Env: []corev1.EnvVar{{Name: "WHO", Value: "sidecar"}}}}},
	}
	client := fake.NewClientset()
	for _, tt := range []struct{ container, annotation, want, wantErr string }{
		{container: "proxy", want: "proxy"},
		{container: "sidecar", want: "sidecar"},
		{annotation: "proxy", want: "proxy"},
		{wantErr: "has containers app, proxy: choose one"},
		{container: "nope", wantErr: `has no container "nope"; it has app, proxy`},
	} {
		p.Annotations = map[string]string{DefaultContainerAnnotation: tt.annotation}
		got, err := Env(context.Background(), client, p, tt.container)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Env(%q) err = %v, want %q", tt.container, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0].Value != tt.want {
			t.Errorf("Env(%q) = %v, %v; want WHO=%s", tt.container, got, err, tt.want)
		}
	}
}

func TestEnvResourceLimitWithoutNode(t *testing.T) {
	// The node cannot be read: an unset limit is left out, a set one is not.
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: corev1.PodSpec{NodeName: "gone", EnableServiceLinks: ptr(false), Containers: []corev1.Container{{
			Name: "app",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
				corev1.ResourceMemory: apiresource.MustParse("128Mi")}},
			Env: []corev1.EnvVar{
				{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
				{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory"}}},
			}}}},
	}
	got, err := Env(context.Background(), fake.NewClientset(), p, "app")
	if err != nil {
		t.Fatal(err)
	}
	if want := []EnvVar{{"MEM", "134217728"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Env = %q, want %q", got, want)
	}
}
