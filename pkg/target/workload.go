package target

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/kubectl/pkg/util/podutils"
)

// Workload is the thing being intercepted: a Deployment, StatefulSet,
// ReplicaSet or a single Pod.
type Workload struct {
	// Kind is the API kind: Deployment, StatefulSet, ReplicaSet or Pod.
	Kind      string
	Name      string
	Namespace string
	// Selector selects the workload's pods. For a Pod it is the pod's own
	// labels, as kubectl's SelectorsForObject does, so it can also match
	// sibling pods: use Name to address the pod itself.
	Selector labels.Selector
	// LabelSelector is Selector as the workload's spec.selector has it; nil
	// for a Pod.
	LabelSelector *metav1.LabelSelector
	// Template is the pod template's spec (for a Pod, the pod's spec).
	Template corev1.PodSpec
	// TemplateLabels are the labels the workload's pods carry (for a Pod,
	// its labels). Services select pods by these.
	TemplateLabels map[string]string
	UID            types.UID
	// Object is the object as read from the API server (*appsv1.Deployment,
	// *appsv1.StatefulSet, *appsv1.ReplicaSet or *corev1.Pod), for callers
	// that need its resourceVersion or want to patch it.
	Object runtime.Object
}

// String returns the workload the way kubectl prints it: deployment/echo.
func (w *Workload) String() string {
	return strings.ToLower(w.Kind) + "/" + w.Name
}

// DefaultResource is the resource a bare NAME argument means. kubectl
// port-forward and logs default to pods, but what kubectl tele users
// intercept is almost always a Deployment, so "kubectl tele intercept echo"
// means deployment/echo.
const DefaultResource = "deployments"

// supportedKinds are the kinds Resolve accepts, in the order error messages
// list them.
var supportedKinds = []struct {
	gk    schema.GroupKind
	usage string
}{
	{schema.GroupKind{Group: "apps", Kind: "Deployment"}, "Deployments (deploy/NAME, or a bare NAME)"},
	{schema.GroupKind{Group: "apps", Kind: "StatefulSet"}, "StatefulSets (sts/NAME)"},
	{schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}, "ReplicaSets (rs/NAME)"},
	{schema.GroupKind{Group: "", Kind: "Pod"}, "Pods (pod/NAME)"},
}

func supported(gk schema.GroupKind) bool {
	for _, k := range supportedKinds {
		if k.gk == gk {
			return true
		}
	}
	return false
}

func supportedList() string {
	s := make([]string, len(supportedKinds))
	for i, k := range supportedKinds {
		s[i] = k.usage
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// Resolve turns a TYPE/NAME argument into a Workload. It accepts what
// kubectl accepts — "deploy/x", "deployment/x", "deployments.apps/x",
// "sts/x", "rs/x", "pod/x", "po/x" — through cli-runtime's resource.Builder,
// as kubectl port-forward does, and a bare "x", which means deployment/x
// (see DefaultResource). An empty namespace means the kubeconfig's.
//
// Other kinds (services, jobs, cronjobs, daemonsets...) are refused before
// anything is fetched, with the list of kinds that are supported. A
// workload that does not exist yields the API server's NotFound error
// (apierrors.IsNotFound still holds) with the namespace and what to do.
func Resolve(ctx context.Context, getter genericclioptions.RESTClientGetter, namespace, arg string) (*Workload, error) {
	if strings.TrimSpace(arg) == "" {
		return nil, errors.New("name the workload to intercept, e.g. deploy/my-service (kubectl tele list shows them)")
	}
	if namespace == "" {
		ns, _, err := getter.ToRawKubeConfigLoader().Namespace()
		if err != nil {
			return nil, fmt.Errorf("read the namespace from kubeconfig: %w", err)
		}
		namespace = ns
	}

	// RequireObject(false) makes the builder map TYPE to a resource without
	// fetching, so an unsupported kind is refused with the list of supported
	// ones rather than with "services \"x\" not found".
	infos, err := resource.NewBuilder(getter).
		WithScheme(scheme.Scheme, scheme.Scheme.PrioritizedVersionsAllGroups()...).
		NamespaceParam(namespace).DefaultNamespace().
		ResourceNames(DefaultResource, arg).
		SingleResourceType().
		RequireObject(false).
		Do().Infos()
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w; kubectl tele intercepts %s", arg, err, supportedList())
	}
	if len(infos) != 1 {
		return nil, fmt.Errorf("resolve %q: it names %d objects; name exactly one workload", arg, len(infos))
	}
	info := infos[0]
	gk := info.Mapping.GroupVersionKind.GroupKind()
	if !supported(gk) {
		hint := ""
		switch gk {
		case schema.GroupKind{Kind: "Service"}:
			hint = "; to intercept what a Service sends to, name its Deployment and pass the Service's port name to --port"
		case schema.GroupKind{Group: "batch", Kind: "Job"}, schema.GroupKind{Group: "batch", Kind: "CronJob"}:
			hint = "; a job's pods run to completion, so name a running pod with pod/NAME"
		}
		return nil, fmt.Errorf("cannot intercept %s/%s: kubectl tele intercepts %s%s",
			strings.ToLower(gk.Kind), info.Name, supportedList(), hint)
	}

	// The same GET resource.Info.Get does, but with ctx.
	obj, err := info.Client.Get().
		NamespaceIfScoped(info.Namespace, info.Mapping.Scope.Name() == meta.RESTScopeNameNamespace).
		Resource(info.Mapping.Resource.Resource).
		Name(info.Name).
		Do(ctx).Get()
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, notFound(ctx, info, namespace, err)
		}
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("get %s/%s in namespace %q: %w; intercept needs get on %s there (docs/permissions.md has the Role)",
				strings.ToLower(gk.Kind), info.Name, namespace, err, info.Mapping.Resource.GroupResource())
		}
		return nil, fmt.Errorf("get %s/%s in namespace %q: %w", strings.ToLower(gk.Kind), info.Name, namespace, err)
	}
	return workloadFromObject(obj)
}

// notFound explains a NotFound: the namespace may be what is missing, as
// resource.Info.Get checks.
func notFound(ctx context.Context, info *resource.Info, namespace string, err error) error {
	if namespace != metav1.NamespaceDefault {
		nsErr := info.Client.Get().AbsPath("api", "v1", "namespaces", namespace).Do(ctx).Error()
		if apierrors.IsNotFound(nsErr) {
			return fmt.Errorf("%w: check --namespace (kubectl get namespaces lists them)", nsErr)
		}
	}
	return fmt.Errorf("%w in namespace %q: kubectl tele list -n %s shows the workloads you can intercept", err, namespace, namespace)
}

// workloadFromObject is kubectl's polymorphichelpers.SelectorsForObject for
// the kinds Resolve supports, plus the pod template, which kubectl has no
// helper for: the type switch that finds the template finds the selector
// beside it. It checks for a missing or empty selector, which
// SelectorsForObject would turn into labels.Nothing() or
// labels.Everything() without complaint.
//
// polymorphichelpers is not imported: it links k8s.io/kubectl/pkg/describe
// and 53 more packages (gettext-go, x/text/language, client-go/scale...)
// into every process of this binary, the daemon and every pod's agent
// among them, to derive again a selector this switch already has.
// Measured on linux/amd64 (go build -trimpath -ldflags '-s -w'; median of
// 5 runs of /usr/bin/time -f %M kubectl-tele version; GODEBUG=inittrace=1):
// binary 95515160 -> 96963320 bytes (+1.4 MiB), max RSS 77032 -> 79680 KiB
// (+2.6 MiB), 0.96 MB more allocated at init; make bench's daemon RSS just
// connected went from 49.6 to 50.9 MiB, over its 50 MiB target. Under the
// 5 MiB the project allows k8s.io/kubectl, but it does not pay. podutils,
// which RunningPod and List use, costs 8 KiB of binary.
func workloadFromObject(obj runtime.Object) (*Workload, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		typed, err := scheme.Scheme.New(u.GroupVersionKind())
		if err != nil {
			return nil, fmt.Errorf("cannot intercept %s: %w", u.GroupVersionKind().Kind, err)
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, typed); err != nil {
			return nil, fmt.Errorf("decode %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		obj = typed
	}

	var (
		w   Workload
		sel *metav1.LabelSelector
		tpl corev1.PodTemplateSpec
	)
	switch t := obj.(type) {
	case *appsv1.Deployment:
		w = Workload{Kind: "Deployment", Name: t.Name, Namespace: t.Namespace, UID: t.UID}
		sel, tpl = t.Spec.Selector, t.Spec.Template
	case *appsv1.StatefulSet:
		w = Workload{Kind: "StatefulSet", Name: t.Name, Namespace: t.Namespace, UID: t.UID}
		sel, tpl = t.Spec.Selector, t.Spec.Template
	case *appsv1.ReplicaSet:
		w = Workload{Kind: "ReplicaSet", Name: t.Name, Namespace: t.Namespace, UID: t.UID}
		sel, tpl = t.Spec.Selector, t.Spec.Template
	case *corev1.Pod:
		return &Workload{
			Kind: "Pod", Name: t.Name, Namespace: t.Namespace, UID: t.UID,
			Selector:       labels.SelectorFromSet(t.Labels),
			Template:       t.Spec,
			TemplateLabels: t.Labels,
			Object:         t,
		}, nil
	default:
		return nil, fmt.Errorf("cannot intercept a %T: kubectl tele intercepts %s", obj, supportedList())
	}
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return nil, fmt.Errorf("%s/%s has no pod selector: add spec.selector", strings.ToLower(w.Kind), w.Name)
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("%s/%s has an invalid label selector: %w", strings.ToLower(w.Kind), w.Name, err)
	}
	w.Selector, w.LabelSelector = s, sel
	w.Template = tpl.Spec
	w.TemplateLabels = tpl.Labels
	w.Object = obj
	return &w, nil
}

// RunningPod picks the pod of w to read from (its environment, its IP), as
// kubectl's AttachablePodForObject does: for a Pod, the pod itself, fetched
// again; otherwise, among the pods w.Selector selects that are running and
// not being deleted, the first in kubectl's order,
// sort.Reverse(podutils.ActivePods): ready before not ready, ready longest,
// fewer restarts, then the oldest. It lists the pods itself rather than
// calling polymorphichelpers.GetFirstPod because that takes no context,
// waits on an unbounded watch when no pod matches, and may return a pod
// that is Pending or terminating, which has no environment to read.
func RunningPod(ctx context.Context, client kubernetes.Interface, w *Workload) (*corev1.Pod, error) {
	if w.Kind == "Pod" {
		pod, err := client.CoreV1().Pods(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("get pod %s/%s: %w", w.Namespace, w.Name, err)
		}
		if pod.Status.Phase != corev1.PodRunning {
			return nil, fmt.Errorf("pod %s/%s is %s, not Running: kubectl describe pod -n %s %s says why",
				w.Namespace, w.Name, pod.Status.Phase, w.Namespace, w.Name)
		}
		return pod, nil
	}
	list, err := client.CoreV1().Pods(w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: w.Selector.String()})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s in namespace %q: %w", w, w.Namespace, err)
	}
	var pods []*corev1.Pod
	for i := range list.Items {
		p := &list.Items[i]
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			pods = append(pods, p)
		}
	}
	if len(pods) == 0 {
		return nil, fmt.Errorf("%s has no running pod (%d pods match %q): kubectl get pods -n %s -l %s shows why",
			w, len(list.Items), w.Selector.String(), w.Namespace, w.Selector.String())
	}
	sort.Sort(sort.Reverse(podutils.ActivePods(pods)))
	return pods[0], nil
}
