package helper

import (
	"strings"
	"testing"
)

const good = `{"device":{"version":1,"name":"tele0","mtu":1420,"addr":"198.18.0.1/32","routes":["10.96.0.0/16","10.244.0.0/24"],"socketPath":"/tmp/kubectl-tele-1000/device.sock"},"dns":{"nameserver":"10.96.0.10","search":["demo.svc.cluster.local","svc.cluster.local","cluster.local"],"domains":["cluster.local"]}}`

func TestParse(t *testing.T) {
	tests := []struct {
		name, req, wantErr string
	}{
		{"good", good, ""},
		{"nameserver outside the routes", strings.Replace(good, "10.96.0.10", "8.8.8.8", 1), "not inside the session's routes"},
		{"search domain with a newline", strings.Replace(good, `"svc.cluster.local",`, `"svc\nnameserver 1.2.3.4",`, 1), "not a valid name"},
		{"unknown field", strings.Replace(good, `"dns":{`, `"dns":{"extra":1,`, 1), "unknown field"},
		{"device name", strings.Replace(good, "tele0", "eth0", 1), "eth0"},
		{"default route", strings.Replace(good, "10.244.0.0/24", "0.0.0.0/0", 1), "0.0.0.0/0"},
		{"not JSON", "nameserver 1.2.3.4", "decode request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, rc, err := Parse([]byte(tt.req), 1000)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if rc.Device != "tele0" || rc.Nameserver.String() != "10.96.0.10" || len(rc.Search) != 3 {
					t.Fatalf("config %+v", rc)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzParse: the root helper's input never panics it, and whatever it
// accepts points the resolver only into the session's routes.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"device":{},"dns":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, spec, rc, err := Parse(data, 1000)
		if err != nil {
			return
		}
		inside := false
		for _, r := range spec.Routes {
			inside = inside || r.Contains(rc.Nameserver)
		}
		if !inside {
			t.Fatalf("accepted nameserver %s outside routes %v", rc.Nameserver, spec.Routes)
		}
		for _, d := range append(rc.Search, rc.Domains...) {
			if strings.ContainsAny(d, " \t\n\r\\\"'") {
				t.Fatalf("accepted domain %q", d)
			}
		}
	})
}
