package objects

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// RestoreService puts back the targetPorts recorded in svc's annotations.
func RestoreService(ctx context.Context, c kubernetes.Interface, svc *corev1.Service) error {
	changed := false
	for i, p := range svc.Spec.Ports {
		key := AnnotOriginalTargetPort + PortKey(p)
		if orig, ok := svc.Annotations[key]; ok {
			svc.Spec.Ports[i].TargetPort = intstr.Parse(orig)
			delete(svc.Annotations, key)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	_, err := c.CoreV1().Services(svc.Namespace).Update(ctx, svc, metav1.UpdateOptions{})
	return err
}

// RestoreServices puts back every Service in ns that the Service mechanism
// retargeted, from its annotations: for uninstall, when no manager is left
// to do it.
func RestoreServices(ctx context.Context, c kubernetes.Interface, ns string) error {
	svcs, err := c.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list services in %s: %w", ns, err)
	}
	for i := range svcs.Items {
		if err := RestoreService(ctx, c, &svcs.Items[i]); err != nil {
			return fmt.Errorf("restore service %s/%s: %w", ns, svcs.Items[i].Name, err)
		}
	}
	return nil
}

// PortKey is how a Service port is named in AnnotOriginalTargetPort: its
// name, or its number when it has none.
func PortKey(p corev1.ServicePort) string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprint(p.Port)
}
