package target

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestList(t *testing.T) {
	two := int32(2)
	tpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: "app",
		Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080},
			{ContainerPort: 9000, Protocol: corev1.ProtocolTCP},
			{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
		},
	}}}}
	ctrl := func(kind, name string) []metav1.OwnerReference {
		yes := true
		return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: "u", Controller: &yes}}
	}
	client := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
			Spec: appsv1.DeploymentSpec{Replicas: &two, Template: tpl}, Status: appsv1.DeploymentStatus{ReadyReplicas: 1}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns"},
			Spec: appsv1.StatefulSetSpec{Template: tpl}, Status: appsv1.StatefulSetStatus{ReadyReplicas: 1}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-5d8", Namespace: "ns", OwnerReferences: ctrl("Deployment", "web")},
			Spec: appsv1.ReplicaSetSpec{Template: tpl}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "lone", Namespace: "ns"}, Spec: appsv1.ReplicaSetSpec{Template: tpl}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-5d8-x", Namespace: "ns", OwnerReferences: ctrl("ReplicaSet", "web-5d8")}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "debug", Namespace: "ns"}, Spec: tpl.Spec,
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "done", Namespace: "ns"}, Status: corev1.PodStatus{Phase: corev1.PodSucceeded}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "other"}},
	)
	got, err := List(context.Background(), client, "ns")
	if err != nil {
		t.Fatal(err)
	}
	ports := []string{"8080/http", "9000"}
	want := []Summary{
		{Kind: "Deployment", Name: "web", Ready: 1, Want: 2, Ports: ports},
		{Kind: "StatefulSet", Name: "db", Ready: 1, Want: 1, Ports: ports},
		{Kind: "ReplicaSet", Name: "lone", Ready: 0, Want: 1, Ports: ports},
		{Kind: "Pod", Name: "debug", Ready: 1, Want: 1, Ports: ports},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List =\n%+v\nwant\n%+v", got, want)
	}
}

// TestListForbiddenKind: a kind the user may not list is left out, and
// said, while the others are listed.
func TestListForbiddenKind(t *testing.T) {
	client := fake.NewClientset(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}})
	client.PrependReactor("list", "statefulsets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "statefulsets"}, "", errors.New("no"))
	})
	got, err := List(context.Background(), client, "ns")
	if err == nil || !strings.Contains(err.Error(), "list statefulsets in namespace ns") || !apierrors.IsForbidden(err) {
		t.Errorf("err = %v, want the statefulsets' Forbidden", err)
	}
	if len(got) != 1 || got[0].Name != "web" {
		t.Errorf("List = %+v, want deployment web", got)
	}
}
