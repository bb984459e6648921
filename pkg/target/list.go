package target

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubectl/pkg/util/podutils"
)

// Summary is one workload as kubectl tele list shows it.
type Summary struct {
	Kind  string // Deployment, StatefulSet, ReplicaSet or Pod
	Name  string
	Ready int32 // pods ready
	Want  int32 // pods wanted
	// Ports are the TCP container ports an intercept can take, as
	// "8080/http" (named) or "8080".
	Ports []string
}

// List returns the workloads of namespace that intercept accepts:
// Deployments, StatefulSets, and the ReplicaSets and Pods that no other
// object controls (a Deployment's ReplicaSets and pods are its own). A kind
// the caller may not list is left out, and its error is returned with the
// rest.
func List(ctx context.Context, client kubernetes.Interface, namespace string) ([]Summary, error) {
	var out []Summary
	var errs []error
	add := func(kind, name string, ready, want int32, spec *corev1.PodSpec) {
		out = append(out, Summary{Kind: kind, Name: name, Ready: ready, Want: want, Ports: tcpPorts(spec)})
	}
	opts := metav1.ListOptions{}
	if l, err := client.AppsV1().Deployments(namespace).List(ctx, opts); err != nil {
		errs = append(errs, fmt.Errorf("list deployments in namespace %s: %w", namespace, err))
	} else {
		for _, d := range l.Items {
			add("Deployment", d.Name, d.Status.ReadyReplicas, replicas(d.Spec.Replicas), &d.Spec.Template.Spec)
		}
	}
	if l, err := client.AppsV1().StatefulSets(namespace).List(ctx, opts); err != nil {
		errs = append(errs, fmt.Errorf("list statefulsets in namespace %s: %w", namespace, err))
	} else {
		for _, s := range l.Items {
			add("StatefulSet", s.Name, s.Status.ReadyReplicas, replicas(s.Spec.Replicas), &s.Spec.Template.Spec)
		}
	}
	if l, err := client.AppsV1().ReplicaSets(namespace).List(ctx, opts); err != nil {
		errs = append(errs, fmt.Errorf("list replicasets in namespace %s: %w", namespace, err))
	} else {
		for _, r := range l.Items {
			if metav1.GetControllerOf(&r) == nil {
				add("ReplicaSet", r.Name, r.Status.ReadyReplicas, replicas(r.Spec.Replicas), &r.Spec.Template.Spec)
			}
		}
	}
	if l, err := client.CoreV1().Pods(namespace).List(ctx, opts); err != nil {
		errs = append(errs, fmt.Errorf("list pods in namespace %s: %w", namespace, err))
	} else {
		for _, p := range l.Items {
			if metav1.GetControllerOf(&p) != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			var ready int32
			if podutils.IsPodReady(&p) {
				ready = 1
			}
			add("Pod", p.Name, ready, 1, &p.Spec)
		}
	}
	kindOrder := map[string]int{"Deployment": 0, "StatefulSet": 1, "ReplicaSet": 2, "Pod": 3}
	slices.SortFunc(out, func(a, b Summary) int {
		if d := kindOrder[a.Kind] - kindOrder[b.Kind]; d != 0 {
			return d
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out, errors.Join(errs...)
}

func replicas(n *int32) int32 {
	if n == nil {
		return 1 // the API's default
	}
	return *n
}

func tcpPorts(spec *corev1.PodSpec) []string {
	var ports []string
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue
			}
			s := strconv.Itoa(int(p.ContainerPort))
			if p.Name != "" {
				s += "/" + p.Name
			}
			ports = append(ports, s)
		}
	}
	return ports
}
