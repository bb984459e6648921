package tgz

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := []File{{"a.log", []byte("one\n")}, {"sub/b.json", []byte("{}")}, {"empty", nil}}
	if err := Write(&buf, "tele-logs", in, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "x.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("got %d files, want %d: %v", len(got), len(in), got)
	}
	for _, f := range in {
		if s, ok := got["tele-logs/"+f.Name]; !ok || s != string(f.Data) {
			t.Errorf("%s: got %q (%v), want %q", f.Name, s, ok, f.Data)
		}
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ReadFile of a missing file: no error")
	}
}
