package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestDocsUpToDate fails when docs/ differs from what the commands generate
// now, so the reference cannot drift from the code.
func TestDocsUpToDate(t *testing.T) {
	want := t.TempDir()
	if err := generate(want); err != nil {
		t.Fatal(err)
	}
	const docs = "../../docs"
	wantFiles, _ := filepath.Glob(filepath.Join(want, "kubectl_tele*.md"))
	gotFiles, _ := filepath.Glob(filepath.Join(docs, "kubectl_tele*.md"))
	names := func(files []string) []string {
		var n []string
		for _, f := range files {
			n = append(n, filepath.Base(f))
		}
		return n
	}
	stale := false
	for _, name := range names(wantFiles) {
		got, err := os.ReadFile(filepath.Join(docs, name))
		if err != nil {
			t.Errorf("docs/%s is missing", name)
			stale = true
			continue
		}
		w, _ := os.ReadFile(filepath.Join(want, name))
		if !bytes.Equal(got, w) {
			t.Errorf("docs/%s differs from what the command generates", name)
			stale = true
		}
	}
	for _, name := range names(gotFiles) {
		if !slices.Contains(names(wantFiles), name) {
			t.Errorf("docs/%s documents a command that no longer exists", name)
			stale = true
		}
	}
	if stale {
		t.Error("docs/ is out of date: run `make docs` and commit the result")
	}
}

// TestHiddenNotDocumented keeps the internal commands out of the reference.
func TestHiddenNotDocumented(t *testing.T) {
	dir := t.TempDir()
	if err := generate(dir); err != nil {
		t.Fatal(err)
	}
	for _, hidden := range []string{"daemon", "helper", "manager", "agent"} {
		if _, err := os.Stat(filepath.Join(dir, "kubectl_tele_"+hidden+".md")); err == nil {
			t.Errorf("the hidden command %s is documented", hidden)
		}
	}
	for _, f := range []string{"kubectl_tele.md", "kubectl_tele_connect.md", "kubectl_tele_completion.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not generated: %v", f, err)
		}
	}
}

// TestImportGraphUpToDate fails when the import graph in docs/how-it-works.md
// is not the packages' own.
func TestImportGraphUpToDate(t *testing.T) {
	const page = "../../docs/" + graphPage
	got, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	graph, err := importGraph()
	if err != nil {
		t.Fatal(err)
	}
	want, err := spliceGraph(got, graph)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the import graph in docs/%s is stale: run `make docs` and commit the result", graphPage)
	}
}
