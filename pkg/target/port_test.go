package target

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

func TestParsePort(t *testing.T) {
	tests := []struct {
		in      string
		want    PortSpec
		wantErr string
	}{
		{in: "8080", want: PortSpec{Local: 8080}},
		{in: "8080:http", want: PortSpec{Local: 8080, Remote: "http"}},
		{in: "3000:8080", want: PortSpec{Local: 3000, Remote: "8080"}},
		{in: "1:65535", want: PortSpec{Local: 1, Remote: "65535"}},
		{in: "65535", want: PortSpec{Local: 65535}},
		{in: "08080:08080", want: PortSpec{Local: 8080, Remote: "8080"}},
		{in: "8080:grpc-web", want: PortSpec{Local: 8080, Remote: "grpc-web"}},
		{in: "8080:a-very-long-service-port-name-that-is-still-a-dns-label", want: PortSpec{Local: 8080, Remote: "a-very-long-service-port-name-that-is-still-a-dns-label"}},

		{in: "", wantErr: "missing the local port"},
		{in: ":8080", wantErr: "missing the local port"},
		{in: "8080:", wantErr: "missing the remote port"},
		{in: "0", wantErr: `local port "0" is not between 1 and 65535`},
		{in: "70000", wantErr: `local port "70000" is not between 1 and 65535`},
		{in: "65536", wantErr: "not between 1 and 65535"},
		{in: "8080:0", wantErr: `remote port "0" is not between 1 and 65535`},
		{in: "8080:70000", wantErr: `remote port "70000" is not between 1 and 65535`},
		{in: "-1", wantErr: "is not a number"},
		{in: "+80", wantErr: "is not a number"},
		{in: " 80", wantErr: "is not a number"},
		{in: "http", wantErr: `local port "http" is not a number`},
		{in: "http:8080", wantErr: "is not a number"},
		{in: "8080:8080:9090", wantErr: "neither a port number nor a port name"},
		{in: "8080:HTTP", wantErr: "neither a port number nor a port name"},
		{in: "8080:-http", wantErr: "neither a port number nor a port name"},
		{in: "8080:http_alt", wantErr: "neither a port number nor a port name"},
		{in: "8080:-80", wantErr: "neither a port number nor a port name"},
		{in: "99999999999999999999", wantErr: "not between 1 and 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePort(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePort(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "--port") {
					t.Errorf("error %q does not name the flag", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePort(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

// FuzzParsePort checks that ParsePort never panics, that what it accepts
// is in range and formats back to a string it parses to the same value.
func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"8080", "8080:http", "3000:8080", ":", "0", "70000", "1:65535", "08:x-y", "8080:-", "\xff:\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		if err != nil {
			if p != (PortSpec{}) {
				t.Fatalf("ParsePort(%q) returned %+v with error %v", s, p, err)
			}
			return
		}
		if p.Local == 0 {
			t.Fatalf("ParsePort(%q) accepted local port 0", s)
		}
		if p.Remote != "" && !isDigits(p.Remote) && len(p.Remote) > 63 {
			t.Fatalf("ParsePort(%q) accepted remote %q", s, p.Remote)
		}
		again, err := ParsePort(p.String())
		if err != nil || again != p {
			t.Fatalf("ParsePort(%q) = %+v, but ParsePort(%q) = %+v, %v", s, p, p.String(), again, err)
		}
	})
}

func workloadWith(kind string, lbls map[string]string, containers ...corev1.Container) *Workload {
	return &Workload{
		Kind: kind, Name: "echo", Namespace: "ns",
		Selector:       labels.SelectorFromSet(lbls),
		Template:       corev1.PodSpec{Containers: containers},
		TemplateLabels: lbls,
	}
}

func svc(name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: ports, ClusterIP: "10.96.0.10"},
	}
}

func TestResolvePort(t *testing.T) {
	app := map[string]string{"app": "echo", "tier": "web"}
	one := workloadWith("Deployment", app, corev1.Container{Name: "echo", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}})
	two := workloadWith("Deployment", app, corev1.Container{Name: "echo", Ports: []corev1.ContainerPort{
		{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
		{Name: "metrics", ContainerPort: 9090},
		{Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
	}})
	undeclared := workloadWith("Deployment", app, corev1.Container{Name: "echo"})
	sidecar := workloadWith("Deployment", app,
		corev1.Container{Name: "echo", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}},
		corev1.Container{Name: "proxy", Ports: []corev1.ContainerPort{{ContainerPort: 15001}}})
	udpOnly := workloadWith("StatefulSet", app, corev1.Container{Name: "dns", Ports: []corev1.ContainerPort{{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}}})

	web := svc("web", map[string]string{"app": "echo"},
		corev1.ServicePort{Name: "web", Port: 80, TargetPort: intstr.FromString("http")},
		corev1.ServicePort{Name: "web-num", Port: 8000, TargetPort: intstr.FromInt32(8080)},
		corev1.ServicePort{Name: "prom", Port: 9090}, // targetPort unset: same as port
	)
	other := svc("other", map[string]string{"app": "other"}, corev1.ServicePort{Name: "web", Port: 80, TargetPort: intstr.FromInt32(1234)})
	noSelector := svc("manual", nil, corev1.ServicePort{Name: "manual", Port: 80, TargetPort: intstr.FromInt32(8080)})
	external := svc("ext", map[string]string{"app": "echo"}, corev1.ServicePort{Name: "ext", Port: 80})
	external.Spec.Type = corev1.ServiceTypeExternalName

	webSP := ServicePort{Service: "web", Name: "web", Port: 80, TargetPort: intstr.FromString("http")}
	webNumSP := ServicePort{Service: "web", Name: "web-num", Port: 8000, TargetPort: intstr.FromInt32(8080)}

	tests := []struct {
		name     string
		w        *Workload
		services []runtime.Object
		remote   string
		// container is --container.
		container string
		want      Target
		warn      string
		wantErr   []string
	}{
		{name: "only port", w: one, remote: "",
			want: Target{Container: "echo", Port: 8080, PortName: "http", Protocol: corev1.ProtocolTCP}},
		{name: "only TCP port among UDP", w: workloadWith("Deployment", app, corev1.Container{Name: "echo", Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080}, {Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}}}), remote: "",
			want: Target{Container: "echo", Port: 8080, PortName: "http", Protocol: corev1.ProtocolTCP}},
		{name: "several ports listed", w: two, remote: "",
			wantErr: []string{"deployment/echo has ports http (8080/TCP), metrics (9090/TCP), dns (5353/UDP): choose one with --port LOCAL:PORT"}},
		{name: "several containers listed", w: sidecar, remote: "",
			wantErr: []string{"http (8080/TCP, container echo), (15001/TCP, container proxy)"}},
		{name: "no ports", w: undeclared, remote: "",
			wantErr: []string{"deployment/echo declares no TCP container port (it has no declared ports): name the port it listens on with --port LOCAL:PORT"}},
		{name: "udp only", w: udpOnly, remote: "",
			wantErr: []string{"statefulset/echo declares no TCP container port (it has ports dns (53/UDP))"}},
		{name: "number", w: two, remote: "9090",
			want: Target{Container: "echo", Port: 9090, PortName: "metrics", Protocol: corev1.ProtocolTCP}},
		{name: "named container port", w: two, remote: "metrics",
			want: Target{Container: "echo", Port: 9090, PortName: "metrics", Protocol: corev1.ProtocolTCP}},
		{name: "named port in second container", w: sidecar, remote: "15001",
			want: Target{Container: "proxy", Port: 15001, Protocol: corev1.ProtocolTCP}},
		{name: "service port name, targetPort name", w: two, services: []runtime.Object{web, other}, remote: "web",
			want: Target{Container: "echo", Port: 8080, PortName: "http", Protocol: corev1.ProtocolTCP, ServicePorts: []ServicePort{webSP, webNumSP}}},
		{name: "service port name, targetPort number", w: two, services: []runtime.Object{web, other}, remote: "web-num",
			want: Target{Container: "echo", Port: 8080, PortName: "http", Protocol: corev1.ProtocolTCP, ServicePorts: []ServicePort{webSP, webNumSP}}},
		{name: "service port name, targetPort unset", w: two, services: []runtime.Object{web}, remote: "prom",
			want: Target{Container: "echo", Port: 9090, PortName: "metrics", Protocol: corev1.ProtocolTCP,
				ServicePorts: []ServicePort{{Service: "web", Name: "prom", Port: 9090}}}},
		{name: "service port name to undeclared port, one container", w: undeclared,
			services: []runtime.Object{svc("web", app, corev1.ServicePort{Name: "web", Port: 80, TargetPort: intstr.FromInt32(3000)})}, remote: "web",
			want: Target{Container: "echo", Port: 3000, Protocol: corev1.ProtocolTCP,
				ServicePorts: []ServicePort{{Service: "web", Name: "web", Port: 80, TargetPort: intstr.FromInt32(3000)}}},
			warn: "no container of deployment/echo declares port 3000; assuming container echo listens on it"},
		{name: "service port name to undeclared port name", w: undeclared,
			services: []runtime.Object{svc("web", app, corev1.ServicePort{Name: "web", Port: 80, TargetPort: intstr.FromString("http")})}, remote: "web",
			wantErr: []string{`service/web port web (80 -> http) sends to container port "http", which deployment/echo does not declare`}},
		{name: "service not selecting the pods is ignored", w: two, services: []runtime.Object{other, noSelector, external}, remote: "web",
			wantErr: []string{`deployment/echo has no container port and no Service port named "web"`, "http, metrics, dns"}},
		{name: "unknown name lists names", w: two, services: []runtime.Object{web}, remote: "grpc",
			wantErr: []string{`no Service port named "grpc"`, "the names are http, metrics, dns, web (service/web), web-num (service/web), prom (service/web)", "--port LOCAL:PORT"}},
		{name: "ambiguous service port name", w: two, services: []runtime.Object{web,
			svc("web2", app, corev1.ServicePort{Name: "web", Port: 81, TargetPort: intstr.FromInt32(9090)})}, remote: "web",
			wantErr: []string{`port name "web" is ambiguous`, "container echo port 8080", "container echo port 9090"}},
		{name: "same target through two services is fine", w: two, services: []runtime.Object{web,
			svc("web2", app, corev1.ServicePort{Name: "web", Port: 81, TargetPort: intstr.FromInt32(8080)})}, remote: "web",
			want: Target{Container: "echo", Port: 8080, PortName: "http", Protocol: corev1.ProtocolTCP, ServicePorts: []ServicePort{webSP, webNumSP,
				{Service: "web2", Name: "web", Port: 81, TargetPort: intstr.FromInt32(8080)}}}},
		{name: "undeclared port, one container", w: undeclared, remote: "3000",
			want: Target{Container: "echo", Port: 3000, Protocol: corev1.ProtocolTCP},
			warn: "no container of deployment/echo declares port 3000; assuming container echo listens on it"},
		{name: "undeclared port says no Service sends to it", w: undeclared, remote: "3000",
			want: Target{Container: "echo", Port: 3000, Protocol: corev1.ProtocolTCP},
			warn: "no Service port sends to it (only one with targetPort 3000 would)"},
		{name: "undeclared port reached by a numeric targetPort", w: undeclared,
			services: []runtime.Object{svc("web", app, corev1.ServicePort{Name: "web", Port: 80, TargetPort: intstr.FromInt32(3000)})}, remote: "3000",
			want: Target{Container: "echo", Port: 3000, Protocol: corev1.ProtocolTCP,
				ServicePorts: []ServicePort{{Service: "web", Name: "web", Port: 80, TargetPort: intstr.FromInt32(3000)}}},
			warn: "no container of deployment/echo declares port 3000; assuming container echo listens on it"},
		{name: "undeclared port with declared ones, one container", w: one, remote: "8081",
			want: Target{Container: "echo", Port: 8081, Protocol: corev1.ProtocolTCP},
			warn: "no container of deployment/echo declares port 8081 (it has ports http (8080/TCP)); assuming container echo listens on it; no Service port sends to it"},
		{name: "undeclared port, two containers", w: sidecar, remote: "3000",
			wantErr: []string{"has ports", "none of them 3000", "container echo", "container proxy", "--container"}},
		{name: "undeclared port, two containers, --container", w: sidecar, remote: "3000", container: "proxy",
			want: Target{Container: "proxy", Port: 3000, Protocol: corev1.ProtocolTCP},
			warn: "no container of deployment/echo declares port 3000 (it has ports (15001/TCP, container proxy)); assuming container proxy listens on it"},
		{name: "declared port, --container", w: sidecar, remote: "8080", container: "echo",
			want: Target{Container: "echo", Port: 8080, PortName: "http", Protocol: corev1.ProtocolTCP}},
		{name: "--container limits the only port", w: sidecar, remote: "", container: "proxy",
			want: Target{Container: "proxy", Port: 15001, Protocol: corev1.ProtocolTCP}},
		{name: "--container limits names", w: sidecar, remote: "http", container: "proxy",
			wantErr: []string{`no Service port named "http"`, "(15001/TCP, container proxy)"}},
		{name: "unknown --container", w: sidecar, remote: "3000", container: "app",
			wantErr: []string{`deployment/echo has no container "app"; its containers are echo, proxy`}},
		{name: "unknown port name still refused", w: one, remote: "grpc",
			wantErr: []string{`deployment/echo has no container port and no Service port named "grpc"`, "ports http (8080/TCP)"}},
		{name: "services of the target listed", w: one, services: []runtime.Object{web, other}, remote: "8080",
			want: Target{Container: "echo", Port: 8080, PortName: "http", Protocol: corev1.ProtocolTCP, ServicePorts: []ServicePort{webSP, webNumSP}}},
		{name: "udp service port not listed for tcp target", w: one, services: []runtime.Object{
			svc("dns", app, corev1.ServicePort{Name: "dns", Port: 8080, Protocol: corev1.ProtocolUDP})}, remote: "http",
			want: Target{Container: "echo", Port: 8080, PortName: "http", Protocol: corev1.ProtocolTCP}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.services...)
			got, warnings, err := ResolvePort(context.Background(), client, tt.w, tt.remote, tt.container)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("ResolvePort(%q) = %+v, want an error", tt.remote, got)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolvePort(%q): %v", tt.remote, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ResolvePort(%q) =\n  %+v\nwant\n  %+v", tt.remote, got, tt.want)
			}
			if tt.warn == "" && len(warnings) > 0 {
				t.Errorf("unexpected warnings %q", warnings)
			}
			if tt.warn != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tt.warn)) {
				t.Errorf("warnings %q, want one containing %q", warnings, tt.warn)
			}
		})
	}
}

func TestResolvePortServicesForbidden(t *testing.T) {
	w := workloadWith("Deployment", map[string]string{"app": "echo"},
		corev1.Container{Name: "echo", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}})
	client := fake.NewClientset()
	client.PrependReactor("list", "services", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New(`services is forbidden: User "alice" cannot list resource "services"`)
	})

	got, warnings, err := ResolvePort(context.Background(), client, w, "http", "")
	if err != nil {
		t.Fatalf("a container port name needs no Service, but: %v", err)
	}
	if got.Port != 8080 || len(warnings) != 1 || !strings.Contains(warnings[0], "cannot list Services") {
		t.Errorf("got %+v, warnings %q", got, warnings)
	}

	_, _, err = ResolvePort(context.Background(), client, w, "web", "")
	if err == nil || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), `no container port named "web"`) {
		t.Errorf("err = %v, want the forbidden error and what was looked for", err)
	}
}
