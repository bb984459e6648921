package resolver

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// loopbackCfg is what the macOS helper is given: the daemon's loopback
// server, the namespace's search list, and the routing domains (the other
// namespaces, svc, the cluster domain).
var loopbackCfg = Config{
	Nameserver: netip.MustParseAddr("127.0.0.1"),
	Port:       50053,
	Search:     []string{"demo.svc.cluster.local", "svc.cluster.local", "cluster.local"},
	Domains:    []string{"demo", "default", "kube-system", "svc", "cluster.local"},
}

// fileLines returns a file's lines that are not comments.
func fileLines(data []byte) []string {
	var lines []string
	for line := range strings.Lines(string(data)) {
		if !strings.HasPrefix(line, "#") {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return lines
}

func TestRenderResolverFile(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want []string
	}{
		{testCfg, []string{"domain cluster.local", "nameserver 100.64.0.53", "search_order 1"}},
		{loopbackCfg, []string{"domain cluster.local", "nameserver 127.0.0.1", "port 50053", "search_order 1"}},
	} {
		got := renderResolverFile(tt.cfg, "cluster.local", nil)
		if lines := fileLines(got); !slices.Equal(lines, tt.want) || !IsOurs(got) {
			t.Errorf("resolver file:\n%s\nwant lines %q and the marker", got, tt.want)
		}
	}
}

func TestResolverFiles(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want map[string][]string // file -> its non-comment lines
	}{
		{"loopback: a file per routing domain, each with the port; the first carries the search list", loopbackCfg, map[string][]string{
			"kubectl-tele.demo": {"domain demo", "nameserver 127.0.0.1", "port 50053",
				"search demo.svc.cluster.local svc.cluster.local cluster.local", "search_order 1"},
			"kubectl-tele.default":       {"domain default", "nameserver 127.0.0.1", "port 50053", "search_order 1"},
			"kubectl-tele.kube-system":   {"domain kube-system", "nameserver 127.0.0.1", "port 50053", "search_order 1"},
			"kubectl-tele.svc":           {"domain svc", "nameserver 127.0.0.1", "port 50053", "search_order 1"},
			"kubectl-tele.cluster.local": {"domain cluster.local", "nameserver 127.0.0.1", "port 50053", "search_order 1"},
		}},
		{"the cluster domain only: search domains under it get no file", Config{
			Nameserver: netip.MustParseAddr("10.96.0.10"),
			Search:     []string{"demo.svc.cluster.local", "svc.cluster.local", "cluster.local"},
			Domains:    []string{"cluster.local"},
		}, map[string][]string{
			"kubectl-tele.cluster.local": {"domain cluster.local", "nameserver 10.96.0.10",
				"search demo.svc.cluster.local svc.cluster.local cluster.local", "search_order 1"},
		}},
		{"names normalised, duplicates once, IPv6 nameserver", Config{
			Nameserver: netip.MustParseAddr("fd00:96::a"),
			Search:     []string{"Demo.svc.Corp.", "corp"},
			Domains:    []string{"CORP.", "corp"},
		}, map[string][]string{
			"kubectl-tele.corp": {"domain corp", "nameserver fd00:96::a", "search demo.svc.corp corp", "search_order 1"},
		}},
		{"no routing domain: each search domain gets one, the first carries the list", Config{
			Nameserver: netip.MustParseAddr("10.96.0.10"),
			Search:     []string{"a.svc.cluster.local", "b.svc.cluster.local", "c", "d", "e", "f", "g"},
		}, map[string][]string{
			"kubectl-tele.a.svc.cluster.local": {"domain a.svc.cluster.local", "nameserver 10.96.0.10",
				"search a.svc.cluster.local b.svc.cluster.local c d e f", "search_order 1"}, // MAXDNSRCH
			"kubectl-tele.b.svc.cluster.local": {"domain b.svc.cluster.local", "nameserver 10.96.0.10", "search_order 1"},
			"kubectl-tele.c":                   {"domain c", "nameserver 10.96.0.10", "search_order 1"},
			"kubectl-tele.d":                   {"domain d", "nameserver 10.96.0.10", "search_order 1"},
			"kubectl-tele.e":                   {"domain e", "nameserver 10.96.0.10", "search_order 1"},
			"kubectl-tele.f":                   {"domain f", "nameserver 10.96.0.10", "search_order 1"},
			"kubectl-tele.g":                   {"domain g", "nameserver 10.96.0.10", "search_order 1"},
		}},
		{"a search domain outside the routing domains gets its own file", Config{
			Nameserver: netip.MustParseAddr("10.96.0.10"),
			Search:     []string{"demo.svc.cluster.local", "corp.example"},
			Domains:    []string{"cluster.local"},
		}, map[string][]string{
			"kubectl-tele.cluster.local": {"domain cluster.local", "nameserver 10.96.0.10",
				"search demo.svc.cluster.local corp.example", "search_order 1"},
			"kubectl-tele.corp.example": {"domain corp.example", "nameserver 10.96.0.10", "search_order 1"},
		}},
		{"no search list: no search line", Config{
			Nameserver: netip.MustParseAddr("10.96.0.10"),
			Domains:    []string{"cluster.local"},
		}, map[string][]string{
			"kubectl-tele.cluster.local": {"domain cluster.local", "nameserver 10.96.0.10", "search_order 1"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.cfg.validate(false)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for i, f := range ResolverFiles(cfg) {
				if !IsOurs(f.Data) {
					t.Errorf("%s has no marker:\n%s", f.Name, f.Data)
				}
				if f.Name != FilePrefix+f.Domain {
					t.Errorf("file %d is named %q for domain %q", i, f.Name, f.Domain)
				}
				got[f.Name] = fileLines(f.Data)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("files =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	// The first file is the first routing domain's: it carries the search
	// list.
	if f := ResolverFiles(loopbackCfg)[0]; f.Domain != "demo" {
		t.Errorf("first file %s, want the first routing domain's", f.Name)
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestResolverDir(t *testing.T) {
	ctx := context.Background()
	opts := Options{Root: t.TempDir()}
	r := NewResolverDir(opts)
	// The user's files, one for a domain of ours: we never touch them.
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"corp.example": "nameserver 10.0.0.1\n", "cluster.local": "nameserver 10.0.0.2\n"} {
		if err := os.WriteFile(filepath.Join(r.Dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Apply(ctx, loopbackCfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := []string{"cluster.local", "corp.example", "kubectl-tele.cluster.local", "kubectl-tele.default", "kubectl-tele.demo", "kubectl-tele.kube-system", "kubectl-tele.svc"}
	if got := listDir(t, r.Dir); !slices.Equal(got, want) {
		t.Errorf("files %q, want %q (no temporary file either)", got, want)
	}
	for _, f := range ResolverFiles(loopbackCfg) {
		p := filepath.Join(r.Dir, f.Name)
		b, err := os.ReadFile(p)
		if err != nil || !slices.Equal(b, f.Data) {
			t.Errorf("%s: %v\n%s\nwant\n%s", p, err, b, f.Data)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v (%v), want 0644: mDNSResponder reads it as another user", p, fi.Mode(), err)
		}
	}
	// Crash, then Apply again: our files are replaced, not an error.
	if err := NewResolverDir(opts).Apply(ctx, loopbackCfg); err != nil {
		t.Fatalf("Apply over a crashed session: %v", err)
	}
	if err := NewResolverDir(opts).Restore(ctx); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := listDir(t, r.Dir); !slices.Equal(got, []string{"cluster.local", "corp.example"}) {
		t.Errorf("after Restore files %q, want only the user's", got)
	}

	// A file of our name that is not ours stops Apply, untouched, and
	// leaves nothing half done.
	theirs := filepath.Join(r.Dir, "kubectl-tele.svc")
	if err := os.WriteFile(theirs, []byte("nameserver 10.0.0.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, loopbackCfg); !errors.Is(err, errNotOurs) {
		t.Errorf("Apply over a user's file = %v, want errNotOurs", err)
	}
	if b, _ := os.ReadFile(theirs); string(b) != "nameserver 10.0.0.3\n" {
		t.Errorf("user's file changed to %q", b)
	}
	if got := listDir(t, r.Dir); !slices.Equal(got, []string{"cluster.local", "corp.example", "kubectl-tele.svc"}) {
		t.Errorf("after refused Apply files %q", got)
	}
}

// A symlink planted under one of our names is not followed out of the
// directory: the write fails and nothing outside changes.
func TestResolverDirSymlink(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc/resolver")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(root, "outside")
	if err := writeResolverFile(dir, "../outside", []byte("x")); err == nil {
		t.Error("writeResolverFile wrote outside its directory")
	}
	if err := os.Symlink(outside, filepath.Join(dir, "kubectl-tele.x")); err != nil {
		t.Fatal(err)
	}
	if err := writeResolverFile(dir, "kubectl-tele.x", []byte("x")); err == nil {
		t.Error("writeResolverFile followed a symlink")
	}
	if _, err := os.Stat(outside); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file outside the directory: %v", err)
	}
}

// A session that died left its files (older ones named by their domain
// alone); the next session's Apply or a quit's Restore removes them, and
// Ours lists them for the plugin's repair.
func TestResolverDirStale(t *testing.T) {
	ctx := context.Background()
	opts := Options{Root: t.TempDir()}
	dead := NewResolverDir(opts)
	if err := dead.Apply(ctx, Config{Nameserver: netip.MustParseAddr("127.0.0.1"), Port: 40000,
		Search: []string{"old.svc.cluster.local"}, Domains: []string{"old", "cluster.local"}}); err != nil {
		t.Fatal(err)
	}
	older := filepath.Join(dead.Dir, "svc.cluster.local")
	if err := os.WriteFile(older, renderResolverFile(testCfg, "svc.cluster.local", nil), 0o644); err != nil {
		t.Fatal(err)
	}
	userFile := filepath.Join(dead.Dir, "corp.example")
	if err := os.WriteFile(userFile, []byte("nameserver 10.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := NewResolverDir(opts)
	ours, err := r.Ours()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(r.Dir, "kubectl-tele.cluster.local"), filepath.Join(r.Dir, "kubectl-tele.old"), older}; !slices.Equal(ours, want) {
		t.Errorf("Ours() = %q, want %q", ours, want)
	}
	if err := r.Apply(ctx, loopbackCfg); err != nil {
		t.Fatal(err)
	}
	for _, stale := range []string{filepath.Join(r.Dir, "kubectl-tele.old"), older} {
		if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale file %s still there after Apply: %v", stale, err)
		}
	}
	if err := r.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if ours, _ := r.Ours(); len(ours) != 0 {
		t.Errorf("after Restore: %q", ours)
	}
	if _, err := os.Stat(userFile); err != nil {
		t.Errorf("user's file: %v", err)
	}
}
