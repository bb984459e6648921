package target

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// PortSpec is the value of --port LOCAL[:REMOTE].
type PortSpec struct {
	// Local is the port on the laptop that receives the traffic.
	Local uint16
	// Remote names the port in the cluster: a container port number (in
	// canonical decimal form), a container port name or a Service port
	// name. Empty means the workload's only TCP port.
	Remote string
}

// String formats s the way ParsePort reads it.
func (s PortSpec) String() string {
	if s.Remote == "" {
		return strconv.Itoa(int(s.Local))
	}
	return strconv.Itoa(int(s.Local)) + ":" + s.Remote
}

// ParsePort parses --port LOCAL[:REMOTE]: LOCAL is a port number 1-65535;
// REMOTE is a port number 1-65535 or a port name (a DNS label, as Service
// port names are; container port names are a subset of those).
func ParsePort(s string) (PortSpec, error) {
	local, remote, hasRemote := strings.Cut(s, ":")
	if local == "" {
		return PortSpec{}, fmt.Errorf("--port %q: missing the local port; use --port LOCAL[:REMOTE], e.g. 8080 or 8080:http", s)
	}
	l, err := parsePortNumber(local)
	if err != nil {
		return PortSpec{}, fmt.Errorf("--port %q: local port %w", s, err)
	}
	spec := PortSpec{Local: l}
	if !hasRemote {
		return spec, nil
	}
	if remote == "" {
		return PortSpec{}, fmt.Errorf("--port %q: missing the remote port after ':'; use --port LOCAL:REMOTE, or --port %s for the workload's only port", s, local)
	}
	if isDigits(remote) {
		r, err := parsePortNumber(remote)
		if err != nil {
			return PortSpec{}, fmt.Errorf("--port %q: remote port %w", s, err)
		}
		spec.Remote = strconv.Itoa(int(r))
		return spec, nil
	}
	if errs := validation.IsDNS1123Label(remote); len(errs) > 0 {
		return PortSpec{}, fmt.Errorf("--port %q: remote %q is neither a port number nor a port name (%s)", s, remote, strings.Join(errs, "; "))
	}
	spec.Remote = remote
	return spec, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func parsePortNumber(s string) (uint16, error) {
	if !isDigits(s) {
		return 0, fmt.Errorf("%q is not a number between 1 and 65535", s)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not between 1 and 65535", s)
	}
	return uint16(n), nil
}

// Target is the container port an intercept takes over.
type Target struct {
	Container string
	Port      int32
	// PortName is the container port's name, "" if it has none or is not
	// declared.
	PortName string
	Protocol corev1.Protocol
	// ServicePorts are the ports of Services in the namespace that select
	// the workload's pods and send to this container port.
	ServicePorts []ServicePort
}

// ServicePort is one port of a Service that sends to a Target.
type ServicePort struct {
	Service    string
	Name       string
	Port       int32
	TargetPort intstr.IntOrString
}

// containerPort is a declared port with the container that declares it.
type containerPort struct {
	container string
	corev1.ContainerPort
}

func (p containerPort) protocol() corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}

// ResolvePort picks the container port that remote (PortSpec.Remote) names
// in w's pod template:
//
//   - a number: the container port with that number. Kubernetes does not
//     require ports to be declared, so a number no container declares is
//     accepted, with a warning, when it is clear which container listens on
//     it: the workload has exactly one container, or container names one.
//   - a name: a container port name, else the name of a port of a Service
//     that selects w's pods, followed through its targetPort.
//   - "": the only TCP port the containers declare.
//
// container, when not "", is the container to intercept (--container): only
// its ports are looked at.
//
// Errors list the ports there are. Services are listed in w's namespace;
// when remote is not a Service port name, a failure to list them is a
// warning and Target.ServicePorts stays empty.
func ResolvePort(ctx context.Context, client kubernetes.Interface, w *Workload, remote, container string) (Target, []string, error) {
	if container != "" && !hasContainer(w, container) {
		return Target{}, nil, fmt.Errorf("%s has no container %q; its containers are %s", w, container, strings.Join(templateContainerNames(w), ", "))
	}
	ports := declaredPorts(w, container)
	var warnings []string

	// Services are needed to resolve a name that is not a container port's
	// and to fill ServicePorts; list them once.
	services, svcErr := selectingServices(ctx, client, w)

	var (
		t   Target
		err error
		// undeclared is the warning that no container declares the number
		// asked for.
		undeclared string
	)
	switch {
	case remote == "":
		t, err = onlyTCPPort(w, ports)
	case isDigits(remote):
		n, perr := strconv.ParseInt(remote, 10, 32)
		if perr != nil || n < 1 || n > 65535 {
			return Target{}, nil, fmt.Errorf("port %q is not between 1 and 65535", remote)
		}
		t, undeclared, err = portByNumber(w, ports, int32(n), container)
	default:
		if p, ok, perr := portByName(w, ports, remote); perr != nil {
			return Target{}, nil, perr
		} else if ok {
			t = targetOf(p)
			break
		}
		if svcErr != nil {
			return Target{}, nil, fmt.Errorf("%s has no container port named %q, and the Services that could name it cannot be read: %w", w, remote, svcErr)
		}
		var warn string
		t, warn, err = portByServicePortName(w, ports, services, remote, container)
		if warn != "" {
			warnings = append(warnings, warn)
		}
	}
	if err != nil {
		return Target{}, nil, err
	}

	if svcErr != nil {
		warnings = append(warnings, fmt.Sprintf("cannot list Services in namespace %q, so the Services that send to port %d are unknown: %v", w.Namespace, t.Port, svcErr))
	} else {
		t.ServicePorts = servicePortsFor(services, t)
	}
	if undeclared != "" {
		// A Service can only name a declared port: an undeclared one is
		// reached through a Service only by a numeric targetPort.
		switch {
		case svcErr != nil:
			undeclared += fmt.Sprintf("; no Service port sends to it unless one has targetPort %d", t.Port)
		case len(t.ServicePorts) == 0:
			undeclared += fmt.Sprintf("; no Service port sends to it (only one with targetPort %d would), so only requests to the pods' IPs are intercepted", t.Port)
		}
		warnings = append([]string{undeclared}, warnings...)
	}
	return t, warnings, nil
}

// declaredPorts lists the ports w's containers declare, only container's
// when it is not "".
func declaredPorts(w *Workload, container string) []containerPort {
	var ports []containerPort
	for _, c := range w.Template.Containers {
		if container != "" && c.Name != container {
			continue
		}
		for _, p := range c.Ports {
			ports = append(ports, containerPort{container: c.Name, ContainerPort: p})
		}
	}
	return ports
}

func targetOf(p containerPort) Target {
	return Target{Container: p.container, Port: p.ContainerPort.ContainerPort, PortName: p.Name, Protocol: p.protocol()}
}

// describePorts lists ports as `http (8080/TCP), metrics (9090/TCP)`,
// naming the container when the pod has several.
func describePorts(w *Workload, ports []containerPort) string {
	if len(ports) == 0 {
		return "no declared ports"
	}
	s := make([]string, len(ports))
	for i, p := range ports {
		d := fmt.Sprintf("%d/%s", p.ContainerPort.ContainerPort, p.protocol())
		if len(w.Template.Containers) > 1 {
			d += ", container " + p.container
		}
		if p.Name != "" {
			s[i] = fmt.Sprintf("%s (%s)", p.Name, d)
		} else {
			s[i] = d
			if len(w.Template.Containers) > 1 {
				s[i] = "(" + d + ")"
			}
		}
	}
	return "ports " + strings.Join(s, ", ")
}

func onlyTCPPort(w *Workload, ports []containerPort) (Target, error) {
	var tcp []containerPort
	for _, p := range ports {
		if p.protocol() == corev1.ProtocolTCP {
			tcp = append(tcp, p)
		}
	}
	switch len(tcp) {
	case 1:
		return targetOf(tcp[0]), nil
	case 0:
		return Target{}, fmt.Errorf("%s declares no TCP container port (it has %s): name the port it listens on with --port LOCAL:PORT",
			w, describePorts(w, ports))
	default:
		return Target{}, fmt.Errorf("%s has %s: choose one with --port LOCAL:PORT", w, describePorts(w, ports))
	}
}

func portByNumber(w *Workload, ports []containerPort, n int32, container string) (Target, string, error) {
	var found []containerPort
	for _, p := range ports {
		if p.ContainerPort.ContainerPort == n {
			found = append(found, p)
		}
	}
	// The same number can be declared for TCP and UDP; intercepts are TCP.
	for _, p := range found {
		if p.protocol() == corev1.ProtocolTCP {
			return targetOf(p), "", nil
		}
	}
	if len(found) > 0 {
		return targetOf(found[0]), "", nil
	}
	// Kubernetes does not require a container to declare the ports it
	// listens on, so an undeclared number is not a mistake as long as it is
	// clear which container listens on it.
	if container == "" && len(w.Template.Containers) == 1 {
		container = w.Template.Containers[0].Name
	}
	if container != "" {
		declared := ""
		if len(ports) > 0 {
			declared = fmt.Sprintf(" (it has %s)", describePorts(w, ports))
		}
		return Target{Container: container, Port: n, Protocol: corev1.ProtocolTCP},
			fmt.Sprintf("no container of %s declares port %d%s; assuming container %s listens on it",
				w, n, declared, container), nil
	}
	names := templateContainerNames(w)
	return Target{}, "", fmt.Errorf("%s has %s, none of them %d, and %d containers (%s), so kubectl tele cannot tell which one listens on %d: name it with --container, or choose a declared port with --port LOCAL:PORT",
		w, describePorts(w, ports), n, len(names), strings.Join(names, ", "), n)
}

func templateContainerNames(w *Workload) []string {
	names := make([]string, len(w.Template.Containers))
	for i, c := range w.Template.Containers {
		names[i] = c.Name
	}
	return names
}

func hasContainer(w *Workload, name string) bool {
	for _, c := range w.Template.Containers {
		if c.Name == name {
			return true
		}
	}
	return false
}

func portByName(w *Workload, ports []containerPort, name string) (containerPort, bool, error) {
	var found []containerPort
	for _, p := range ports {
		if p.Name == name {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return containerPort{}, false, nil
	case 1:
		return found[0], true, nil
	}
	for _, p := range found {
		if p.protocol() == corev1.ProtocolTCP {
			return p, true, nil
		}
	}
	return containerPort{}, false, fmt.Errorf("%s has several container ports named %q (%s): choose one by number with --port LOCAL:NUMBER",
		w, name, describePorts(w, found))
}

// selectingServices returns the Services in w's namespace whose selector
// selects w's pods, sorted by name.
func selectingServices(ctx context.Context, client kubernetes.Interface, w *Workload) ([]corev1.Service, error) {
	list, err := client.CoreV1().Services(w.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []corev1.Service
	for _, s := range list.Items {
		// A Service without a selector has hand-made endpoints; an
		// ExternalName Service points outside. Neither sends to our pods.
		if len(s.Spec.Selector) == 0 || s.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.TemplateLabels)) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func svcProtocol(p corev1.ServicePort) corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}

// targetPortOf is the port a Service port sends to; an unset targetPort
// means the same number as port.
func targetPortOf(p corev1.ServicePort) intstr.IntOrString {
	if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 ||
		p.TargetPort.Type == intstr.String && p.TargetPort.StrVal == "" {
		return intstr.FromInt32(p.Port)
	}
	return p.TargetPort
}

func portByServicePortName(w *Workload, ports []containerPort, services []corev1.Service, name, container string) (Target, string, error) {
	type candidate struct {
		t    Target
		warn string
		from string
	}
	var cands []candidate
	for _, s := range services {
		for _, sp := range s.Spec.Ports {
			if sp.Name != name || svcProtocol(sp) != corev1.ProtocolTCP {
				continue
			}
			tp := targetPortOf(sp)
			from := fmt.Sprintf("service/%s port %s (%d -> %s)", s.Name, sp.Name, sp.Port, tp.String())
			var (
				t    Target
				warn string
				err  error
			)
			if tp.Type == intstr.String {
				p, ok, perr := portByName(w, ports, tp.StrVal)
				switch {
				case perr != nil:
					err = perr
				case !ok:
					err = fmt.Errorf("%s sends to container port %q, which %s does not declare (it has %s)", from, tp.StrVal, w, describePorts(w, ports))
				default:
					t = targetOf(p)
				}
			} else {
				t, warn, err = portByNumber(w, ports, tp.IntVal, container)
			}
			if err != nil {
				return Target{}, "", fmt.Errorf("--port names %s: %w", from, err)
			}
			cands = append(cands, candidate{t: t, warn: warn, from: from})
		}
	}
	if len(cands) == 0 {
		var names []string
		for _, p := range ports {
			if p.Name != "" {
				names = append(names, p.Name)
			}
		}
		for _, s := range services {
			for _, sp := range s.Spec.Ports {
				if sp.Name != "" {
					names = append(names, fmt.Sprintf("%s (service/%s)", sp.Name, s.Name))
				}
			}
		}
		known := "there are no named ports"
		if len(names) > 0 {
			known = "the names are " + strings.Join(names, ", ")
		}
		return Target{}, "", fmt.Errorf("%s has no container port and no Service port named %q (%s; %s): choose one with --port LOCAL:PORT",
			w, name, describePorts(w, ports), known)
	}
	for _, c := range cands[1:] {
		if c.t.Container != cands[0].t.Container || c.t.Port != cands[0].t.Port {
			var from []string
			for _, c := range cands {
				from = append(from, fmt.Sprintf("%s to container %s port %d", c.from, c.t.Container, c.t.Port))
			}
			return Target{}, "", fmt.Errorf("port name %q is ambiguous: %s; choose the container port by number with --port LOCAL:NUMBER",
				name, strings.Join(from, "; "))
		}
	}
	return cands[0].t, cands[0].warn, nil
}

// servicePortsFor lists the Service ports that send to t.
func servicePortsFor(services []corev1.Service, t Target) []ServicePort {
	var out []ServicePort
	for _, s := range services {
		for _, sp := range s.Spec.Ports {
			if svcProtocol(sp) != t.Protocol {
				continue
			}
			tp := targetPortOf(sp)
			if tp.Type == intstr.Int && tp.IntVal == t.Port ||
				tp.Type == intstr.String && t.PortName != "" && tp.StrVal == t.PortName {
				out = append(out, ServicePort{Service: s.Name, Name: sp.Name, Port: sp.Port, TargetPort: sp.TargetPort})
			}
		}
	}
	return out
}
