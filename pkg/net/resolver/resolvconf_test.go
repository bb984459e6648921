package resolver

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var testCfg = Config{
	Nameserver: netip.MustParseAddr("100.64.0.53"),
	Search:     []string{"demo.svc.cluster.local", "svc.cluster.local", "cluster.local"},
	Domains:    []string{"cluster.local", "demo"},
	Device:     "tele0",
}

func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ResolvConfFile
	}{
		{"empty", "", ResolvConfFile{}},
		{
			"typical",
			"# comment\n; other comment\nnameserver 192.168.1.1\nnameserver 2001:db8::1\nsearch corp.example.com example.com\noptions edns0 trust-ad\n",
			ResolvConfFile{
				Nameservers: []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("2001:db8::1")},
				Search:      []string{"corp.example.com", "example.com"},
				Options:     []string{"edns0", "trust-ad"},
			},
		},
		{
			"last search or domain wins",
			"search a.example\ndomain b.example\n",
			ResolvConfFile{Search: []string{"b.example"}},
		},
		{
			"trailing comments, zones, bad addresses, tabs and no final newline",
			"nameserver\t10.0.0.1 # router\nnameserver fe80::1%eth0\nnameserver not-an-ip\nnameserver\noptions ndots:2\noptions rotate",
			ResolvConfFile{
				Nameservers: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fe80::1%eth0")},
				Options:     []string{"ndots:2", "rotate"},
			},
		},
		{
			"systemd-resolved stub",
			"nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n",
			ResolvConfFile{
				Nameservers: []netip.Addr{netip.MustParseAddr("127.0.0.53")},
				Search:      []string{"."},
				Options:     []string{"edns0", "trust-ad"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseResolvConf([]byte(tt.in))
			if !slices.Equal(got.Nameservers, tt.want.Nameservers) || !slices.Equal(got.Search, tt.want.Search) || !slices.Equal(got.Options, tt.want.Options) {
				t.Errorf("ParseResolvConf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRenderResolvConf(t *testing.T) {
	tests := []struct {
		name     string
		original string
		want     []string // the lines after the header comments
	}{
		{
			"no original",
			"",
			[]string{
				"nameserver 100.64.0.53",
				"search demo.svc.cluster.local svc.cluster.local cluster.local",
				"options ndots:1",
			},
		},
		{
			"original search kept after ours, original servers after ours, options merged",
			"nameserver 192.168.1.1\nnameserver 8.8.8.8\nsearch corp.example.com cluster.local\noptions ndots:3 rotate edns0 timeout:2 attempts:5\n",
			[]string{
				"nameserver 100.64.0.53",
				"nameserver 192.168.1.1",
				"nameserver 8.8.8.8",
				"search demo.svc.cluster.local svc.cluster.local cluster.local corp.example.com",
				"options ndots:1 timeout:1 attempts:2 edns0",
			},
		},
		{
			"glibc reads three servers: ours and the first two; ours is not repeated",
			"nameserver 100.64.0.53\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n",
			[]string{
				"nameserver 100.64.0.53",
				"nameserver 10.0.0.1",
				"nameserver 10.0.0.2",
				"search demo.svc.cluster.local svc.cluster.local cluster.local",
				"options ndots:1 timeout:1 attempts:2",
			},
		},
		{
			"root search domain is no domain",
			"nameserver 127.0.0.53\nsearch .\n",
			[]string{
				"nameserver 100.64.0.53",
				"nameserver 127.0.0.53",
				"search demo.svc.cluster.local svc.cluster.local cluster.local",
				"options ndots:1 timeout:1 attempts:2",
			},
		},
		{
			"no original server: the original timeout stays",
			"options timeout:3\n",
			[]string{
				"nameserver 100.64.0.53",
				"search demo.svc.cluster.local svc.cluster.local cluster.local",
				"options ndots:1 timeout:3",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := RenderResolvConf(testCfg, ParseResolvConf([]byte(tt.original)), "/var/lib/kubectl-tele/resolv.conf.backup")
			if !IsOurs(out) {
				t.Errorf("rendered file lacks the marker:\n%s", out)
			}
			if !bytes.Contains(out, []byte("/var/lib/kubectl-tele/resolv.conf.backup")) {
				t.Errorf("rendered file does not say where the backup is:\n%s", out)
			}
			var got []string
			for line := range strings.Lines(string(out)) {
				if !strings.HasPrefix(line, "#") {
					got = append(got, strings.TrimSuffix(line, "\n"))
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("rendered\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			// What we write must read back as what we meant.
			back := ParseResolvConf(out)
			if len(back.Nameservers) == 0 || len(back.Nameservers) > maxNameservers || back.Nameservers[0] != testCfg.Nameserver {
				t.Errorf("nameservers read back as %v, want ours first", back.Nameservers)
			}
		})
	}
}

// fakeRoot makes a root with an /etc/resolv.conf holding content.
func fakeRoot(t *testing.T, content string) (Options, string) {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "etc/resolv.conf")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return Options{Root: root}, p
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const originalConf = "# from DHCP\nnameserver 192.168.1.1\nnameserver 2001:db8::53\nsearch home.arpa\noptions edns0\n\n"

func TestResolvConfApplyRestore(t *testing.T) {
	opts, path := fakeRoot(t, originalConf)
	ctx := context.Background()
	rc := NewResolvConf(opts)
	ino := inode(t, path)

	if err := rc.Apply(ctx, testCfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got := inode(t, path); got != ino {
		t.Errorf("Apply replaced the file (inode %d -> %d); it must write in place", ino, got)
	}
	applied := readFile(t, path)
	if !IsOurs([]byte(applied)) || !strings.Contains(applied, "nameserver 100.64.0.53\n") {
		t.Errorf("applied file:\n%s", applied)
	}
	if got := readFile(t, rc.BackupPath); got != originalConf {
		t.Errorf("backup differs from the original:\n%q", got)
	}
	wantBackup := filepath.Join(opts.Root, "var/lib/kubectl-tele/resolv.conf.backup")
	if rc.BackupPath != wantBackup {
		t.Errorf("backup path %s, want %s", rc.BackupPath, wantBackup)
	}

	// The daemon reads the original servers while the session runs.
	ns, err := OriginalNameservers(opts)
	if err != nil {
		t.Fatalf("OriginalNameservers: %v", err)
	}
	if want := []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("2001:db8::53")}; !slices.Equal(ns, want) {
		t.Errorf("OriginalNameservers = %v, want %v", ns, want)
	}

	// Restore from another process: a fresh Configurator.
	if err := NewResolvConf(opts).Restore(ctx); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := readFile(t, path); got != originalConf {
		t.Errorf("restored file is not byte-identical:\n%q\nwant\n%q", got, originalConf)
	}
	if got := inode(t, path); got != ino {
		t.Errorf("Restore replaced the file (inode %d -> %d)", ino, got)
	}
	if _, err := os.Stat(rc.BackupPath); !os.IsNotExist(err) {
		t.Errorf("backup still there after Restore: %v", err)
	}
	// Restore again: nothing to do.
	if err := rc.Restore(ctx); err != nil {
		t.Errorf("second Restore: %v", err)
	}
	// Outside a session the original is the file itself.
	if ns, err := OriginalNameservers(opts); err != nil || len(ns) != 2 {
		t.Errorf("OriginalNameservers outside a session = %v, %v", ns, err)
	}
}

func TestResolvConfCrashRecovery(t *testing.T) {
	tests := []struct {
		name    string
		current func(rendered string) string // the file when the next Apply runs
		wantNew string                       // what the new backup must hold
	}{
		{
			"our file left by a crashed session",
			func(r string) string { return r },
			originalConf,
		},
		{
			"file rewritten by the network manager since",
			func(string) string { return "nameserver 10.1.1.1\n" },
			"nameserver 10.1.1.1\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, path := fakeRoot(t, originalConf)
			ctx := context.Background()
			if err := NewResolvConf(opts).Apply(ctx, testCfg); err != nil {
				t.Fatal(err)
			}
			// The session crashes: no Restore. Something may touch the file.
			if err := os.WriteFile(path, []byte(tt.current(readFile(t, path))), 0o644); err != nil {
				t.Fatal(err)
			}
			rc := NewResolvConf(opts)
			cfg := testCfg
			cfg.Nameserver = netip.MustParseAddr("100.64.0.54")
			if err := rc.Apply(ctx, cfg); err != nil {
				t.Fatalf("Apply after crash: %v", err)
			}
			if got := readFile(t, rc.BackupPath); got != tt.wantNew {
				t.Errorf("backup after crash recovery:\n%q\nwant\n%q", got, tt.wantNew)
			}
			if got := readFile(t, path); ParseResolvConf([]byte(got)).Nameservers[0] != cfg.Nameserver || strings.Contains(got, testCfg.Nameserver.String()) {
				t.Errorf("file after second Apply:\n%s", got)
			}
			if err := rc.Restore(ctx); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, path); got != tt.wantNew {
				t.Errorf("restored\n%q\nwant\n%q", got, tt.wantNew)
			}
		})
	}
}

func TestResolvConfLostBackup(t *testing.T) {
	opts, path := fakeRoot(t, originalConf)
	ctx := context.Background()
	rc := NewResolvConf(opts)
	if err := rc.Apply(ctx, testCfg); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(rc.BackupPath); err != nil {
		t.Fatal(err)
	}
	if err := rc.Apply(ctx, testCfg); !errors.Is(err, errNoBackup) {
		t.Errorf("Apply over our file without backup = %v, want errNoBackup", err)
	}
	if err := rc.Restore(ctx); !errors.Is(err, errNoBackup) {
		t.Errorf("Restore without backup of our file = %v, want errNoBackup", err)
	}
	if _, err := OriginalNameservers(opts); !errors.Is(err, errNoBackup) {
		t.Errorf("OriginalNameservers = %v, want errNoBackup", err)
	}
	if !IsOurs([]byte(readFile(t, path))) {
		t.Error("the file was changed although nothing could be restored")
	}
}

func TestResolvConfMissingFile(t *testing.T) {
	opts, path := fakeRoot(t, "")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rc := NewResolvConf(opts)
	if err := rc.Apply(ctx, testCfg); err != nil {
		t.Fatal(err)
	}
	if err := rc.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	// Restored as empty, which the C library reads as a missing file.
	if got := readFile(t, path); got != "" {
		t.Errorf("restored %q, want empty", got)
	}
}

func TestResolvConfSymlinkKept(t *testing.T) {
	opts, path := fakeRoot(t, "")
	target := filepath.Join(opts.Root, "run-resolv.conf")
	if err := os.WriteFile(target, []byte(originalConf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rc := NewResolvConf(opts)
	if err := rc.Apply(ctx, testCfg); err != nil {
		t.Fatal(err)
	}
	if err := rc.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("resolv.conf is no longer a symlink: %v %v", fi.Mode(), err)
	}
	if got := readFile(t, target); got != originalConf {
		t.Errorf("target restored as %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		device  bool
		wantErr bool
		search  []string
	}{
		{"ok, normalised", Config{Nameserver: testCfg.Nameserver, Search: []string{"Demo.svc.cluster.local.", "demo.svc.cluster.local", ""}}, false, false, []string{"demo.svc.cluster.local"}},
		{"no nameserver", Config{Search: testCfg.Search}, false, true, nil},
		{"injection in a domain", Config{Nameserver: testCfg.Nameserver, Search: []string{"a'; rm -rf /"}}, false, true, nil},
		{"newline in a domain", Config{Nameserver: testCfg.Nameserver, Domains: []string{"a\nnameserver 1.1.1.1"}}, false, true, nil},
		{"empty label", Config{Nameserver: testCfg.Nameserver, Domains: []string{"a..b"}}, false, true, nil},
		{"device needed", Config{Nameserver: testCfg.Nameserver}, true, true, nil},
		{"bad device", Config{Nameserver: testCfg.Nameserver, Device: "tele0'"}, true, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.validate(tt.device)
			if (err != nil) != tt.wantErr {
				t.Fatalf("validate = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !slices.Equal(got.Search, tt.search) {
				t.Errorf("search %q, want %q", got.Search, tt.search)
			}
		})
	}
}

func TestResolvConfApplyCancelled(t *testing.T) {
	opts, path := fakeRoot(t, originalConf)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rc := NewResolvConf(opts)
	if err := rc.Apply(ctx, testCfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a cancelled context = %v", err)
	}
	if got := readFile(t, path); got != originalConf {
		t.Errorf("file after a cancelled Apply: %q", got)
	}
	if _, err := os.Stat(rc.BackupPath); !os.IsNotExist(err) {
		t.Errorf("backup left after a cancelled Apply: %v", err)
	}
}
