package mount

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckDir(t *testing.T) {
	root := t.TempDir()
	full := filepath.Join(root, "full")
	os.MkdirAll(full, 0o700)
	os.WriteFile(filepath.Join(full, "mine"), nil, 0o600)
	ours := filepath.Join(root, "ours")
	if err := prepare(ours, "web"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ours, "left"), nil, 0o600)
	empty := filepath.Join(root, "empty")
	os.MkdirAll(empty, 0o700)
	for dir, wantErr := range map[string]string{
		filepath.Join(root, "new"): "",
		empty:                      "",
		ours:                       "",
		full:                       "not empty, and not one kubectl tele made",
	} {
		err := CheckDir(dir)
		if (err == nil) != (wantErr == "") || err != nil && !strings.Contains(err.Error(), wantErr) {
			t.Errorf("CheckDir(%s) = %v, want %q", filepath.Base(dir), err, wantErr)
		}
	}
}

// TestClear: a folder kubectl-tele made is removed, one the user gave is
// emptied, and one without the marker is left alone, also from a stale
// record after a crash.
func TestClear(t *testing.T) {
	root := t.TempDir()
	made := filepath.Join(root, "made")
	given := filepath.Join(root, "given")
	os.MkdirAll(given, 0o755)
	for _, d := range []string{made, given} {
		if err := prepare(d, "web"); err != nil {
			t.Fatal(err)
		}
		if _, err := writeVolume(filepath.Join(d, "etc", "app"), []File{{"a", []byte("1"), 0o644}}); err != nil {
			t.Fatal(err)
		}
	}
	if fi, _ := os.Stat(given); fi.Mode().Perm() != 0o700 {
		t.Errorf("the folder given: mode %o, want 0700", fi.Mode().Perm())
	}
	notOurs := filepath.Join(root, "not-ours")
	os.MkdirAll(notOurs, 0o700)
	os.WriteFile(filepath.Join(notOurs, "keep"), nil, 0o600)

	state := filepath.Join(root, "state")
	for _, d := range []string{made, given, notOurs} {
		if err := Record(state, d); err != nil {
			t.Fatal(err)
		}
	}
	cleared, err := CleanStale(state)
	if err != nil {
		t.Fatal(err)
	}
	if len(cleared) != 2 {
		t.Errorf("cleared %v, want made and given", cleared)
	}
	if _, err := os.Stat(made); !os.IsNotExist(err) {
		t.Errorf("the folder kubectl-tele made: %v, want it removed", err)
	}
	if entries, err := os.ReadDir(given); err != nil || len(entries) != 0 {
		t.Errorf("the folder given: %v entries, %v; want it there and empty", len(entries), err)
	}
	if _, err := os.Stat(filepath.Join(notOurs, "keep")); err != nil {
		t.Errorf("a folder without the marker lost its file: %v", err)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("records left: %d", len(entries))
	}
}
