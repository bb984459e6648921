package mount

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

// TestWriteVolume: a volume's names are symlinks through ..data, an update
// swaps ..data to a new folder and removes the old one and the names no
// longer in it, the modes are the pod's for the owner alone, and an
// unchanged volume is not written again.
func TestWriteVolume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "app")
	v1 := []File{{"config.yaml", []byte("a: 1"), 0o644}, {"conf/nested", []byte("n"), 0o400}, {"gone", []byte("g"), 0o644}}
	changed, err := writeVolume(dir, v1)
	if err != nil || !changed {
		t.Fatalf("first write: %v, changed %v", err, changed)
	}
	check := func(want map[string]string) {
		t.Helper()
		got := map[string]string{}
		for name := range want {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			got[name] = string(b)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("files %v, want %v", got, want)
		}
	}
	check(map[string]string{"config.yaml": "a: 1", "conf/nested": "n", "gone": "g"})
	if l, err := os.Readlink(filepath.Join(dir, "config.yaml")); err != nil || l != "..data/config.yaml" {
		t.Errorf("config.yaml links to %q (%v), want ..data/config.yaml", l, err)
	}
	for name, want := range map[string]os.FileMode{"config.yaml": 0o600, "conf/nested": 0o400} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %o", name, fi.Mode(), err, want)
		}
	}
	first, _ := os.Readlink(filepath.Join(dir, dataDir))

	if changed, err := writeVolume(dir, v1); err != nil || changed {
		t.Errorf("the same files again: %v, changed %v, want unchanged", err, changed)
	}

	v2 := []File{{"conf/nested", []byte("n"), 0o400}, {"config.yaml", []byte("a: 2"), 0o644}, {"new", []byte("x"), 0o644}}
	if changed, err := writeVolume(dir, v2); err != nil || !changed {
		t.Fatalf("update: %v, changed %v", err, changed)
	}
	check(map[string]string{"config.yaml": "a: 2", "conf/nested": "n", "new": "x"})
	if _, err := os.Lstat(filepath.Join(dir, "gone")); !os.IsNotExist(err) {
		t.Errorf("a name no longer in the volume: %v, want it removed", err)
	}
	if _, err := os.Stat(filepath.Join(dir, first)); !os.IsNotExist(err) {
		t.Errorf("the previous folder %s: %v, want it removed", first, err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != 5 || names[0] != "..2" && names[0][:3] != "..2" || names[1] != dataDir {
		t.Errorf("the volume's folder holds %v, want one timestamped folder, ..data, conf, config.yaml, new", names)
	}
}
