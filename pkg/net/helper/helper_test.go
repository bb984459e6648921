package helper

import (
	"errors"
	"net/netip"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/net/resolver"
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

// What a darwin daemon sends: its socket in /tmp/kubectl-tele-UID (macOS has
// no /run/user), a uid of 501, the search list whose domains become file
// names in /etc/resolver.
func TestParseDarwin(t *testing.T) {
	darwin := strings.Replace(good, "/tmp/kubectl-tele-1000/device.sock", "/tmp/kubectl-tele-501/device.sock", 1)
	tests := []struct {
		name, req, wantErr string
	}{
		{"darwin request", darwin, ""},
		{"IPv6 session", strings.NewReplacer(`"addr":"198.18.0.1/32"`, `"addr":"fd00:1::1/128"`,
			`"routes":["10.96.0.0/16","10.244.0.0/24"]`, `"routes":["fd00:96::/108"]`,
			`"nameserver":"10.96.0.10"`, `"nameserver":"fd00:96::a"`).Replace(darwin), ""},
		{"domain that is a path", strings.Replace(darwin, `"cluster.local"]`, `"../../etc/sudoers.d/x"]`, 1), "not a valid name"},
		{"domain with a slash", strings.Replace(darwin, `"cluster.local"]`, `"a/b"]`, 1), "not a valid name"},
		{"domain that is dot-dot", strings.Replace(darwin, `"cluster.local"]`, `".."]`, 1), "not a valid name"},
		{"socket in the user's TMPDIR", strings.Replace(darwin, "/tmp/kubectl-tele-501/device.sock", "/var/folders/x/T/kubectl-tele-501/../device.sock", 1), "not clean"},
		{"utun name as the device name", strings.Replace(darwin, `"name":"tele0"`, `"name":"utun4"`, 1), "utun4"},
		{"MTU too small for IPv6", strings.NewReplacer(`"mtu":1420`, `"mtu":1000`, `"routes":["10.96.0.0/16","10.244.0.0/24"]`, `"routes":["10.96.0.0/16","fd00:96::/108"]`).Replace(darwin), "IPv6 needs at least 1280"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dr, _, rc, err := Parse([]byte(tt.req), 501)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if dr.SocketPath != "/tmp/kubectl-tele-501/device.sock" || rc.Device != "tele0" {
					t.Fatalf("request %+v, config %+v", dr, rc)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestStateDir(t *testing.T) {
	ino := func() (uint64, error) { return 4026531840, nil }
	noNetns := func() (uint64, error) { return 0, errors.New("no /proc") }
	tests := []struct {
		goos    string
		netns   func() (uint64, error)
		want    string
		wantErr string
	}{
		{"linux", ino, "/var/lib/kubectl-tele/netns-4026531840", ""},
		{"linux", noNetns, "", "identify network namespace: no /proc"},
		{"darwin", noNetns, "/var/db/kubectl-tele", ""},
		{"freebsd", noNetns, "/var/lib/kubectl-tele", ""},
		{"windows", ino, "", "unsupported"},
	}
	for _, tt := range tests {
		got, err := stateDir(tt.goos, tt.netns)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.goos, err, tt.wantErr)
			}
			continue
		}
		if err != nil || filepath.ToSlash(got) != tt.want {
			t.Errorf("%s: stateDir() = %q, %v; want %q", tt.goos, got, err, tt.want)
		}
	}
}

// The daemon's loopback DNS server is taken on macOS only, on an
// unprivileged port; the resolver files then point there.
func TestLoopbackDNS(t *testing.T) {
	in := resolver.Config{Nameserver: netip.MustParseAddr("10.96.0.10"), Search: []string{"demo.svc.cluster.local"}}
	for _, tt := range []struct {
		name    string
		port    uint32
		goos    string
		want    resolver.Config
		wantErr string
	}{
		{"no port: the nameserver in the routes", 0, "darwin", in, ""},
		{"no port on Linux", 0, "linux", in, ""},
		{"darwin", 50053, "darwin", resolver.Config{Nameserver: netip.MustParseAddr("127.0.0.1"), Port: 50053, Search: in.Search}, ""},
		{"Linux cannot name a port", 50053, "linux", resolver.Config{}, "only macOS"},
		{"privileged port", 53, "darwin", resolver.Config{}, "between 1024 and 65535"},
		{"not a port", 70000, "darwin", resolver.Config{}, "between 1024 and 65535"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loopbackDNS(in, tt.port, tt.goos)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("loopbackDNS = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	// Through Parse: a request with a port, on this (Linux) host.
	req := strings.Replace(good, `"domains":["cluster.local"]`, `"domains":["cluster.local"],"loopbackPort":50053`, 1)
	if _, _, _, err := Parse([]byte(req), 1000); runtime.GOOS != "darwin" && (err == nil || !strings.Contains(err.Error(), "only macOS")) {
		t.Errorf("Parse with a loopback port on %s: %v", runtime.GOOS, err)
	}
}
