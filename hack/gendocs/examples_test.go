package main

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-tele/kubectl-tele/pkg/plugin"
)

const repoRoot = "../../"

// docsPages are the hand-written pages of docs/: all but the generated
// command reference.
func docsPages(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob(repoRoot + "docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range docs {
		if !strings.HasPrefix(filepath.Base(f), "kubectl_tele") {
			files = append(files, f)
		}
	}
	return files
}

// pages are the hand-written Markdown files a user reads: the README, the
// changelog and the docs pages.
func pages(t *testing.T) []string {
	return append([]string{repoRoot + "README.md", repoRoot + "CHANGELOG.md"}, docsPages(t)...)
}

// example is one `kubectl tele ...` command line of a page.
type example struct {
	where string // file:line
	args  []string
}

var inlineCode = regexp.MustCompile("`([^`]+)`")

// examples finds the command lines in fenced code blocks (but yaml and
// mermaid) and in inline code spans that run kubectl tele.
func examples(t *testing.T, file string) []example {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []example
	add := func(line int, text string) {
		i := strings.Index(text, "kubectl tele ")
		if i < 0 {
			return
		}
		args := shellWords(text[i+len("kubectl tele "):])
		if len(args) == 0 {
			return
		}
		out = append(out, example{where: strings.TrimPrefix(file, repoRoot) + ":" + strconv.Itoa(line), args: args})
	}
	sc := bufio.NewScanner(f)
	fence, lang := false, ""
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "```") {
			fence, lang = !fence, strings.TrimPrefix(trimmed, "```")
			continue
		}
		if fence {
			if lang != "yaml" && lang != "mermaid" {
				add(n, line)
			}
			continue
		}
		for _, m := range inlineCode.FindAllStringSubmatch(line, -1) {
			add(n, m[1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// shellWords splits one shell command line into words, honouring quotes,
// and stops where the command ends: a comment, a pipe, &&, || or ;. Words a
// page uses as an ellipsis ("...") are left out.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	flush := func() {
		if inWord && cur.String() != "..." {
			words = append(words, cur.String())
		}
		cur.Reset()
		inWord = false
	}
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			flush()
		case (r == '#' && !inWord) || r == '|' || r == ';' || r == '&':
			flush()
			return words
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	flush()
	return words
}

// TestExamples checks every kubectl tele command line of the README and the
// docs pages against the commands: the subcommand exists, is not hidden, and
// takes each flag it is given, with a value its type accepts.
func TestExamples(t *testing.T) {
	total := 0
	for _, file := range pages(t) {
		exs := examples(t, file)
		total += len(exs)
		for _, ex := range exs {
			root := plugin.NewRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: os.Stderr, ErrOut: os.Stderr})
			cmd, rest, err := root.Find(ex.args)
			if err != nil {
				t.Errorf("%s: kubectl tele %s: %v", ex.where, strings.Join(ex.args, " "), err)
				continue
			}
			if cmd == root && !strings.HasPrefix(ex.args[0], "-") {
				t.Errorf("%s: kubectl tele %s: names no command", ex.where, strings.Join(ex.args, " "))
				continue
			}
			if cmd.Hidden {
				t.Errorf("%s: kubectl tele %s: %s is a hidden command", ex.where, strings.Join(ex.args, " "), cmd.Name())
			}
			if err := cmd.ParseFlags(rest); err != nil && !errors.Is(err, pflag.ErrHelp) {
				t.Errorf("%s: kubectl tele %s: %v", ex.where, strings.Join(ex.args, " "), err)
			}
		}
	}
	if total < 30 {
		t.Errorf("found only %d kubectl tele examples in the README and docs pages; the extraction is broken", total)
	}
}

// TestReadmeLinksEveryPage keeps the README the index of the docs pages.
func TestReadmeLinksEveryPage(t *testing.T) {
	readme, err := os.ReadFile(repoRoot + "README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(docsPages(t), repoRoot+"docs/kubectl_tele.md", repoRoot+"CHANGELOG.md") {
		target := strings.TrimPrefix(f, repoRoot)
		if !strings.Contains(string(readme), "("+target+")") && !strings.Contains(string(readme), "("+target+"#") {
			t.Errorf("README.md does not link %s", target)
		}
	}
	if len(readme) >= 10*1024 {
		t.Errorf("README.md is %d bytes: keep the front page under 10 KiB and move detail to docs/", len(readme))
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestLinks checks the relative links of the README and docs pages: the file
// exists and, for a Markdown page, so does the heading an anchor names.
func TestLinks(t *testing.T) {
	for _, file := range pages(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(link, "#")
			target := file
			if path != "" {
				target = filepath.Join(filepath.Dir(file), path)
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s: link %s: %v", strings.TrimPrefix(file, repoRoot), link, err)
				continue
			}
			if anchor != "" && strings.HasSuffix(target, ".md") && !slices.Contains(anchors(t, target), anchor) {
				t.Errorf("%s: link %s: no heading %q in %s", strings.TrimPrefix(file, repoRoot), link, anchor, target)
			}
		}
	}
}

// anchors are the ids GitHub gives a page's headings.
func anchors(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	fence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			fence = !fence
		}
		if fence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var id strings.Builder
		for _, r := range title {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
				id.WriteRune(r)
			case r == ' ':
				id.WriteRune('-')
			}
		}
		ids = append(ids, id.String())
	}
	return ids
}

// TestPermissionsShowsTheRole keeps the Roles shown in docs/permissions.md
// the ones deploy/user-role.yaml and deploy/user-role-mount.yaml hold, from
// their apiVersion on.
func TestPermissionsShowsTheRole(t *testing.T) {
	page, err := os.ReadFile(repoRoot + "docs/permissions.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"deploy/user-role.yaml", "deploy/user-role-mount.yaml"} {
		role, err := os.ReadFile(repoRoot + f)
		if err != nil {
			t.Fatal(err)
		}
		_, want, ok := strings.Cut(string(role), "\napiVersion:")
		if !ok {
			t.Fatalf("%s has no apiVersion", f)
		}
		if !strings.Contains(string(page), "\napiVersion:"+want+"```\n") {
			t.Errorf("docs/permissions.md does not show %s as it is: copy the file from its apiVersion on into the page's yaml block", f)
		}
	}
}
