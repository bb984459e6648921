package device

import (
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

const validRequestJSON = `{"version":1,"name":"tele0","mtu":1400,"addr":"198.18.0.1/32",` +
	`"routes":["10.96.0.0/12","172.20.0.0/16"],"socketPath":"/run/user/1000/kubectl-tele/daemon.sock"}`

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Request
		wantErr string
	}{
		{"valid", validRequestJSON, Request{
			Name: "tele0", MTU: 1400, Addr: "198.18.0.1/32",
			Routes:     []string{"10.96.0.0/12", "172.20.0.0/16"},
			SocketPath: "/run/user/1000/kubectl-tele/daemon.sock",
		}, ""},
		{"allow conflicts", `{"version":1,"name":"tele3","mtu":1280,"addr":"fd00::1/128","routes":["fd00:96::/108"],` +
			`"socketPath":"/tmp/kubectl-tele-1000/d.sock","allowConflictingSubnets":true}`, Request{
			Name: "tele3", MTU: 1280, Addr: "fd00::1/128", Routes: []string{"fd00:96::/108"},
			SocketPath: "/tmp/kubectl-tele-1000/d.sock", AllowConflictingSubnets: true,
		}, ""},
		{"empty", ``, Request{}, "decode JSON"},
		{"null", `null`, Request{}, "decode JSON"},
		{"no version", `{}`, Request{}, "helper protocol 0, this helper 1"},
		{"not an object", `[1]`, Request{}, "decode JSON"},
		{"unknown field", strings.Replace(validRequestJSON, `"version":1`, `"version":1,"command":"rm -rf /"`, 1), Request{}, "unknown field"},
		{"trailing object", validRequestJSON + `{}`, Request{}, "decode JSON"},
		{"trailing garbage", validRequestJSON + `x`, Request{}, "decode JSON"},
		{"version by name", strings.Replace(validRequestJSON, `"version":1`, `"version":"HELPER_VERSION_1"`, 1), Request{
			Name: "tele0", MTU: 1400, Addr: "198.18.0.1/32",
			Routes:     []string{"10.96.0.0/12", "172.20.0.0/16"},
			SocketPath: "/run/user/1000/kubectl-tele/daemon.sock",
		}, ""},
		{"newer version", strings.Replace(validRequestJSON, `"version":1`, `"version":3`, 1), Request{}, "helper protocol 3, this helper 1"},
		{"an IPv6 ULA", strings.Replace(validRequestJSON, `"version":1`, `"version":1,"addr6":"fd12:3456:789a::1/128"`, 1), Request{
			Name: "tele0", MTU: 1400, Addr: "198.18.0.1/32", Addr6: "fd12:3456:789a::1/128",
			Routes:     []string{"10.96.0.0/12", "172.20.0.0/16"},
			SocketPath: "/run/user/1000/kubectl-tele/daemon.sock",
		}, ""},
		{"addr6 not a ULA", strings.Replace(validRequestJSON, `"version":1`, `"version":1,"addr6":"2001:db8::1/128"`, 1), Request{}, "must be a /128 in fd00::/8"},
		{"addr6 a prefix", strings.Replace(validRequestJSON, `"version":1`, `"version":1,"addr6":"fd12:3456:789a::/64"`, 1), Request{}, "must be a /128 in fd00::/8"},
		{"addr6 beside an IPv6 addr", strings.Replace(strings.Replace(validRequestJSON, `198.18.0.1/32`, `fd00::1/128`, 1), `"version":1`, `"version":1,"addr6":"fd12:3456:789a::1/128"`, 1), Request{}, "is IPv6 already"},
		{"mtu not a number", strings.Replace(validRequestJSON, `"mtu":1400`, `"mtu":"big"`, 1), Request{}, "decode JSON"},
		{"bad addr", strings.Replace(validRequestJSON, `198.18.0.1/32`, `198.18.0.1`, 1), Request{}, "address \"198.18.0.1\""},
		{"bad route", strings.Replace(validRequestJSON, `10.96.0.0/12`, `10.96.0.0/33`, 1), Request{}, "route \"10.96.0.0/33\""},
		{"zoned route", strings.Replace(validRequestJSON, `10.96.0.0/12`, `fe80::%eth0/64`, 1), Request{}, "route \"fe80::%eth0/64\""},
		{"default route", strings.Replace(validRequestJSON, `10.96.0.0/12`, `0.0.0.0/0`, 1), Request{}, "default route"},
		{"bad name", strings.Replace(validRequestJSON, `"tele0"`, `"eth0"`, 1), Request{}, "device name"},
		{"no socket", strings.Replace(validRequestJSON, `"/run/user/1000/kubectl-tele/daemon.sock"`, `""`, 1), Request{}, "socket path is empty"},
		{"relative socket", strings.Replace(validRequestJSON, `"/run/user/1000/kubectl-tele/daemon.sock"`, `"daemon.sock"`, 1), Request{}, "must be absolute"},
		{"unclean socket", strings.Replace(validRequestJSON, `/run/user/1000/kubectl-tele/`, `/run/user/1000/../0/`, 1), Request{}, "not clean"},
		{"NUL in socket", strings.Replace(validRequestJSON, `daemon.sock`, `daemon\u0000.sock`, 1), Request{}, "NUL"},
		{"too large", `{"version":1,"name":"` + strings.Repeat("a", MaxRequestSize) + `"}`, Request{}, "exceeds the limit"},
		{"too many routes", strings.Replace(validRequestJSON, `"routes":[`, `"routes":[`+strings.Repeat(`"10.1.0.0/16",`, MaxRoutes), 1), Request{}, "at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRequest() error = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequest() error = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseRequest() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzParseRequest checks that ParseRequest never panics and that whatever it
// accepts is a valid spec that survives a round trip.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(validRequestJSON))
	f.Add([]byte(`{"version":1,"name":"tele3","mtu":1280,"addr":"fd00::1/128","routes":["fd00:96::/108"],"socketPath":"/tmp/kubectl-tele-1000/d.sock","allowConflictingSubnets":true}`))
	f.Add([]byte(`{"version":1,"name":"tele0","mtu":576,"addr":"10.0.0.1/32","routes":[],"socketPath":"/a"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"version":1,"routes":["0.0.0.0/0","::ffff:1.2.3.4/128"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRequest(data)
		if err != nil {
			return
		}
		s, err := r.Spec()
		if err != nil {
			t.Fatalf("accepted request %q has no spec: %v", data, err)
		}
		if err := ValidateSpec(s); err != nil {
			t.Fatalf("accepted request %q has an invalid spec: %v", data, err)
		}
		if err := checkSocketPathSyntax(r.SocketPath); err != nil {
			t.Fatalf("accepted request %q has a bad socket path: %v", data, err)
		}
		out, err := protojson.Marshal(&teleproto.DeviceRequest{Version: teleproto.CurrentHelperVersion, Name: r.Name, Mtu: uint32(r.MTU),
			Addr: r.Addr, Routes: r.Routes, SocketPath: r.SocketPath, AllowConflictingSubnets: r.AllowConflictingSubnets})
		if err != nil {
			t.Fatalf("marshal %+v: %v", r, err)
		}
		r2, err := ParseRequest(out)
		if err != nil {
			t.Fatalf("round trip of %q (%s) failed: %v", data, out, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip changed %+v to %+v", r, r2)
		}
	})
}
