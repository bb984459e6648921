package target

import (
	"context"
	"fmt"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubectl/pkg/util/fieldpath"
)

// EnvVar is one variable of a container's environment.
type EnvVar struct {
	Name, Value string
}

// DefaultContainerAnnotation names the container kubectl picks when none is
// given (kubectl.kubernetes.io/default-container).
const DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container"

// Env returns the environment container (of pod) runs with, computed as
// the kubelet computes it (pkg/kubelet's makeEnvironmentVariables):
//
//   - envFrom sources in order, each ConfigMap's or Secret's keys with the
//     source's prefix, a later source replacing an earlier one;
//   - then env in order, replacing envFrom: value with $(VAR) references
//     expanded against the variables defined so far and the service
//     variables (see Expand), or valueFrom a ConfigMap key, a Secret key, a
//     pod field (metadata.name, metadata.namespace, metadata.uid,
//     metadata.labels['k'], metadata.annotations['k'], spec.nodeName,
//     spec.serviceAccountName, status.podIP(s), status.hostIP(s)) or a
//     container resource (limits.cpu, requests.memory... with divisor);
//   - then the service-link variables (MY_SVC_SERVICE_HOST...) of the
//     Services in the pod's namespace (if spec.enableServiceLinks is not
//     false) and of the kubernetes Service, for names not already set.
//
// An optional ConfigMap, Secret or key that is missing is skipped, as the
// kubelet skips it; a missing required one is an error naming it.
//
// Differences from the kubelet, all best effort: a resource limit the
// container does not set is the node's allocatable, read from the Node; if
// the Node cannot be read the variable is left out. Service-link variables
// are left out if the Services cannot be listed. fileKeyRef (env from a
// file in a volume) cannot be read from outside the pod and is left out.
//
// The result lists each name once, in the order names were first defined;
// service-link variables follow, sorted.
//
// container "" means the pod's default container: the one named by the
// kubectl.kubernetes.io/default-container annotation, or the only one.
//
// Why not k8s.io/kubectl's pkg/cmd/set/env (GetEnvVarRefValue), which
// kubectl set env --from uses: it answers what that command needs, not what
// the container sees. It resolves one valueFrom at a time, with no envFrom,
// no $(VAR) expansion, no service links, no optional sources (a missing one
// is an error), and of pod fields only metadata.* (not spec.nodeName,
// spec.serviceAccountName, status.podIP(s) or status.hostIP(s)); everything
// here would still be needed around it.
func Env(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, container string) ([]EnvVar, error) {
	c, err := findContainer(pod, container)
	if err != nil {
		return nil, err
	}
	r := envResolver{
		ctx: ctx, client: client, pod: pod,
		configMaps: map[string]*corev1.ConfigMap{},
		secrets:    map[string]*corev1.Secret{},
		env:        map[string]string{},
	}
	serviceEnv := r.serviceEnv()

	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, err := r.configMap(from.ConfigMapRef.Name, isOptional(from.ConfigMapRef.Optional), "envFrom")
			if err != nil {
				return nil, err
			}
			if cm == nil {
				continue
			}
			for _, k := range sortedKeys(cm.Data) {
				r.set(from.Prefix+k, cm.Data[k])
			}
		case from.SecretRef != nil:
			s, err := r.secret(from.SecretRef.Name, isOptional(from.SecretRef.Optional), "envFrom")
			if err != nil {
				return nil, err
			}
			if s == nil {
				continue
			}
			keys := make([]string, 0, len(s.Data))
			for k := range s.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				r.set(from.Prefix+k, string(s.Data[k]))
			}
		}
	}

	mapping := func(name string) (string, bool) {
		if v, ok := r.env[name]; ok {
			return v, true
		}
		v, ok := serviceEnv[name]
		return v, ok
	}
	for _, e := range c.Env {
		value := e.Value
		if value != "" {
			value = Expand(value, mapping)
		} else if e.ValueFrom != nil {
			v, ok, err := r.valueFrom(c, e)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			value = v
		}
		r.set(e.Name, value)
	}

	out := make([]EnvVar, 0, len(r.order)+len(serviceEnv))
	for _, name := range r.order {
		out = append(out, EnvVar{Name: name, Value: r.env[name]})
	}
	for _, name := range sortedKeys(serviceEnv) {
		if _, ok := r.env[name]; !ok {
			out = append(out, EnvVar{Name: name, Value: serviceEnv[name]})
		}
	}
	return out, nil
}

// FindContainer is the container of pod that intercept's --container names
// ("": the kubectl.kubernetes.io/default-container annotation's, or the
// only one), a sidecar among the init containers included.
func FindContainer(pod *corev1.Pod, name string) (*corev1.Container, error) {
	return findContainer(pod, name)
}

func findContainer(pod *corev1.Pod, name string) (*corev1.Container, error) {
	if name == "" {
		name = pod.Annotations[DefaultContainerAnnotation]
	}
	if name == "" {
		if len(pod.Spec.Containers) == 1 {
			return &pod.Spec.Containers[0], nil
		}
		if len(pod.Spec.Containers) == 0 {
			return nil, fmt.Errorf("pod %s/%s has no containers", pod.Namespace, pod.Name)
		}
		return nil, fmt.Errorf("pod %s/%s has containers %s: choose one with --container", pod.Namespace, pod.Name, containerNames(pod))
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i], nil
		}
	}
	// Sidecars are init containers that keep running.
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i], nil
		}
	}
	return nil, fmt.Errorf("pod %s/%s has no container %q; it has %s", pod.Namespace, pod.Name, name, containerNames(pod))
}

func containerNames(pod *corev1.Pod) string {
	names := make([]string, len(pod.Spec.Containers))
	for i, c := range pod.Spec.Containers {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

func isOptional(b *bool) bool { return b != nil && *b }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type envResolver struct {
	ctx        context.Context
	client     kubernetes.Interface
	pod        *corev1.Pod
	configMaps map[string]*corev1.ConfigMap // nil value: optional and missing
	secrets    map[string]*corev1.Secret
	env        map[string]string
	order      []string
	node       *corev1.Node
	nodeErr    error
}

func (r *envResolver) set(name, value string) {
	if _, ok := r.env[name]; !ok {
		r.order = append(r.order, name)
	}
	r.env[name] = value
}

// configMap fetches a ConfigMap once. It returns nil, nil for an optional
// one that does not exist.
func (r *envResolver) configMap(name string, optional bool, use string) (*corev1.ConfigMap, error) {
	if cm, ok := r.configMaps[name]; ok && (cm != nil || optional) {
		return cm, nil
	}
	cm, err := r.client.CoreV1().ConfigMaps(r.pod.Namespace).Get(r.ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && optional {
			r.configMaps[name] = nil
			return nil, nil
		}
		return nil, fmt.Errorf("%s: read ConfigMap %s/%s: %w", use, r.pod.Namespace, name, err)
	}
	r.configMaps[name] = cm
	return cm, nil
}

func (r *envResolver) secret(name string, optional bool, use string) (*corev1.Secret, error) {
	if s, ok := r.secrets[name]; ok && (s != nil || optional) {
		return s, nil
	}
	s, err := r.client.CoreV1().Secrets(r.pod.Namespace).Get(r.ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && optional {
			r.secrets[name] = nil
			return nil, nil
		}
		return nil, fmt.Errorf("%s: read Secret %s/%s: %w", use, r.pod.Namespace, name, err)
	}
	r.secrets[name] = s
	return s, nil
}

// valueFrom resolves env[].valueFrom. ok is false when the variable is to
// be left out (an optional source that is missing).
func (r *envResolver) valueFrom(c *corev1.Container, e corev1.EnvVar) (value string, ok bool, err error) {
	vf := e.ValueFrom
	use := "env " + e.Name
	switch {
	case vf.FieldRef != nil:
		v, err := fieldRefValue(r.pod, vf.FieldRef.FieldPath)
		if err != nil {
			return "", false, fmt.Errorf("%s: %w", use, err)
		}
		return v, true, nil
	case vf.ResourceFieldRef != nil:
		return r.resourceFieldValue(c, vf.ResourceFieldRef)
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		optional := isOptional(ref.Optional)
		cm, err := r.configMap(ref.Name, optional, use)
		if err != nil || cm == nil {
			return "", false, err
		}
		v, found := cm.Data[ref.Key]
		if !found {
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("%s: ConfigMap %s/%s has no key %q (kubectl describe configmap -n %s %s lists its keys)",
				use, r.pod.Namespace, ref.Name, ref.Key, r.pod.Namespace, ref.Name)
		}
		return v, true, nil
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		optional := isOptional(ref.Optional)
		s, err := r.secret(ref.Name, optional, use)
		if err != nil || s == nil {
			return "", false, err
		}
		v, found := s.Data[ref.Key]
		if !found {
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("%s: Secret %s/%s has no key %q (kubectl describe secret -n %s %s lists its keys)",
				use, r.pod.Namespace, ref.Name, ref.Key, r.pod.Namespace, ref.Name)
		}
		return string(v), true, nil
	}
	// fileKeyRef and sources newer than this code: not readable from here.
	return "", false, nil
}

// fieldRefValue is the kubelet's podFieldSelectorRuntimeValue for a running
// pod: the spec and status fields it reads itself, and metadata through
// k8s.io/kubectl's copy of k8s.io/kubernetes/pkg/fieldpath (labels and
// annotations whole or by key, name, namespace, uid).
func fieldRefValue(pod *corev1.Pod, path string) (string, error) {
	switch path {
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	case "status.hostIPs":
		ips := make([]string, len(pod.Status.HostIPs))
		for i, ip := range pod.Status.HostIPs {
			ips[i] = ip.IP
		}
		return strings.Join(ips, ","), nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.podIPs":
		ips := make([]string, len(pod.Status.PodIPs))
		for i, ip := range pod.Status.PodIPs {
			ips[i] = ip.IP
		}
		return strings.Join(ips, ","), nil
	}
	return fieldpath.ExtractFieldPathAsString(pod, path)
}

// resourceFieldValue is the kubelet's containerResourceRuntimeValue: the
// quantity divided by the divisor (default 1), rounded up. Limits the
// container does not set are the node's allocatable.
func (r *envResolver) resourceFieldValue(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, bool, error) {
	return ResourceFieldValue(r.pod, c, ref, r.getNode)
}

// FieldRefValue is a pod field as the kubelet gives it to a container's
// environment or a downwardAPI volume (fieldRef.fieldPath): metadata.labels
// and metadata.annotations whole are KEY="VALUE" lines, sorted.
func FieldRefValue(pod *corev1.Pod, path string) (string, error) { return fieldRefValue(pod, path) }

// ResourceFieldValue is a container resource (resourceFieldRef) as the
// kubelet's containerResourceRuntimeValue computes it: the quantity divided
// by the divisor (default 1), rounded up. A limit the container does not
// set is the node's allocatable, from node (nil: left out, ok false).
// c is the container the reference belongs to, unless it names another.
func ResourceFieldValue(pod *corev1.Pod, c *corev1.Container, ref *corev1.ResourceFieldSelector, node func() *corev1.Node) (string, bool, error) {
	if ref.ContainerName != "" {
		var err error
		if c, err = findContainer(pod, ref.ContainerName); err != nil {
			return "", false, fmt.Errorf("resourceFieldRef: %w", err)
		}
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", false, fmt.Errorf("resourceFieldRef: unsupported resource %q", ref.Resource)
	}
	list := c.Resources.Requests
	if kind == "limits" {
		list = c.Resources.Limits
	}
	q, set := list[corev1.ResourceName(name)]
	if kind == "limits" && (!set || q.IsZero()) && name != "" && !strings.HasPrefix(name, corev1.ResourceHugePagesPrefix) {
		node := node()
		if node == nil {
			return "", false, nil
		}
		if q, set = node.Status.Allocatable[corev1.ResourceName(name)]; !set {
			return "", false, nil
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	switch corev1.ResourceName(name) {
	case corev1.ResourceCPU:
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), true, nil
	case corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
	default:
		if !strings.HasPrefix(name, corev1.ResourceHugePagesPrefix) {
			return "", false, fmt.Errorf("resourceFieldRef: unsupported resource %q", ref.Resource)
		}
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), true, nil
}

func (r *envResolver) getNode() *corev1.Node {
	if r.node == nil && r.nodeErr == nil {
		if r.pod.Spec.NodeName == "" {
			r.nodeErr = fmt.Errorf("pod is not scheduled")
		} else {
			r.node, r.nodeErr = r.client.CoreV1().Nodes().Get(r.ctx, r.pod.Spec.NodeName, metav1.GetOptions{})
		}
	}
	return r.node
}

// masterServices are the Services of the default namespace whose variables
// every pod gets, as the kubelet's masterServices.
var masterServices = map[string]bool{"kubernetes": true}

// serviceEnv is the kubelet's getServiceEnvVarMap. Errors leave it empty:
// the variables are derived, and a user who may not list Services should
// still get the app's own configuration.
func (r *envResolver) serviceEnv() map[string]string {
	services := map[string]*corev1.Service{}
	for name := range masterServices {
		if s, err := r.client.CoreV1().Services(metav1.NamespaceDefault).Get(r.ctx, name, metav1.GetOptions{}); err == nil {
			services[name] = s
		}
	}
	if r.pod.Spec.EnableServiceLinks == nil || *r.pod.Spec.EnableServiceLinks {
		if list, err := r.client.CoreV1().Services(r.pod.Namespace).List(r.ctx, metav1.ListOptions{}); err == nil {
			for i := range list.Items {
				s := &list.Items[i]
				// The pod's namespace wins over the default namespace's
				// master services, as in the kubelet.
				services[s.Name] = s
			}
		}
	}
	m := map[string]string{}
	for _, s := range services {
		addServiceEnv(m, s)
	}
	return m
}

// addServiceEnv is k8s.io/kubernetes/pkg/kubelet/envvars.FromServices for
// one Service.
func addServiceEnv(m map[string]string, s *corev1.Service) {
	ip := s.Spec.ClusterIP
	if ip == "" || ip == corev1.ClusterIPNone || len(s.Spec.Ports) == 0 {
		return
	}
	prefix := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
	m[prefix+"_SERVICE_HOST"] = ip
	m[prefix+"_SERVICE_PORT"] = strconv.Itoa(int(s.Spec.Ports[0].Port))
	for i, p := range s.Spec.Ports {
		port := strconv.Itoa(int(p.Port))
		if p.Name != "" {
			m[prefix+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))] = port
		}
		proto := string(svcProtocol(p))
		url := strings.ToLower(proto) + "://" + net.JoinHostPort(ip, port)
		if i == 0 {
			m[prefix+"_PORT"] = url
		}
		pp := prefix + "_PORT_" + port + "_" + strings.ToUpper(proto)
		m[pp] = url
		m[pp+"_PROTO"] = strings.ToLower(proto)
		m[pp+"_PORT"] = port
		m[pp+"_ADDR"] = ip
	}
}

// Expand expands $(VAR) references in s as the kubelet expands them in env
// values, command and args (k8s.io/kubernetes/third_party/forked/golang/
// expansion, which is not importable):
//
//   - $(VAR) is replaced by VAR's value if lookup knows VAR, and is left as
//     it is otherwise;
//   - $$ is an escaped $: $$(VAR) becomes the literal $(VAR);
//   - a $ followed by anything else, an unclosed $( and a trailing $ are
//     left as they are.
func Expand(s string, lookup func(name string) (string, bool)) string {
	var b strings.Builder
	checkpoint := 0
	for cursor := 0; cursor < len(s); cursor++ {
		if s[cursor] != '$' || cursor+1 >= len(s) {
			continue
		}
		b.WriteString(s[checkpoint:cursor])
		read, isVar, advance := readVariableName(s[cursor+1:])
		if isVar {
			if v, ok := lookup(read); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + read + ")")
			}
		} else {
			b.WriteString(read)
		}
		cursor += advance
		checkpoint = cursor + 1
	}
	return b.String() + s[checkpoint:]
}

// readVariableName reads what follows a '$': it returns the bytes to emit
// (or the variable's name), whether it is a variable, and how many bytes
// of s it consumed.
func readVariableName(s string) (string, bool, int) {
	r, size := utf8.DecodeRuneInString(s)
	switch r {
	case '$':
		return s[:size], false, size
	case '(':
		for i := 1; i < len(s); i++ {
			if s[i] == ')' {
				return s[1:i], true, i + 1
			}
		}
		// Unclosed: emit "$(" and go on after the '('.
		return "$(", false, 1
	default:
		// The kubelet writes string(r), which turns an invalid UTF-8 byte
		// into U+FFFD; values from the API are valid UTF-8, so copying the
		// bytes is the same and loses nothing.
		return "$" + s[:size], false, size
	}
}
