// Command checksleep keeps tests off the clock. In a unit test a time.Sleep
// (or a bare <-time.After) may run only inside a testing/synctest bubble, where it costs nothing and
// means "once everything else is blocked": lexically inside a function
// passed to synctest.Test (a literal, a function of the package or a local
// variable holding a literal). Elsewhere it needs a comment beside it that
// starts with "sleepcheck:allow" and says why no event can be waited on. In
// an e2e test (build tag e2e) every sleep needs a comment beside it (on its
// line or the line above) that says what it waits for.
//
//	go run ./hack/checksleep [dir ...]
//
// It reads the *_test.go files under the directories (default: .) and
// prints each offending sleep; the exit status is 1 if there is one.
package main

import (
	"fmt"
	"go/ast"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func main() {
	dirs := os.Args[1:]
	if len(dirs) == 0 {
		dirs = []string{"."}
	}
	byDir := map[string][]string{}
	for _, root := range dirs {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(path, "_test.go") {
				byDir[filepath.Dir(path)] = append(byDir[filepath.Dir(path)], path)
			}
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	var bad []string
	for _, files := range byDir {
		b, err := checkPackage(files)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		bad = append(bad, b...)
	}
	for _, b := range bad {
		fmt.Println(b)
	}
	if len(bad) > 0 {
		fmt.Printf("%d sleeps on the clock in tests: use testing/synctest, wait on an event, or say why not (see hack/checksleep)\n", len(bad))
		os.Exit(1)
	}
}

// checkPackage checks the test files of one directory together, since a
// bubble's function may be declared in another file than its synctest.Test.
func checkPackage(paths []string) ([]string, error) {
	fset := token.NewFileSet()
	var files []*ast.File
	for _, p := range paths {
		f, err := parser.ParseFile(fset, p, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	// Functions of the package by name, for synctest.Test(t, name).
	funcs := map[string]*ast.FuncDecl{}
	for _, f := range files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
				funcs[fd.Name.Name] = fd
			}
		}
	}
	var bubbles []span
	for _, f := range files {
		synctestName := importName(f, "testing/synctest")
		if synctestName == "" {
			continue
		}
		locals := localFuncLits(f)
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !isPkgCall(call, synctestName, "Test") || len(call.Args) != 2 {
				return true
			}
			switch fn := call.Args[1].(type) {
			case *ast.FuncLit:
				bubbles = append(bubbles, span{fn.Pos(), fn.End()})
			case *ast.Ident:
				if fd := funcs[fn.Name]; fd != nil {
					bubbles = append(bubbles, span{fd.Pos(), fd.End()})
				}
				for _, lit := range locals[fn.Name] {
					bubbles = append(bubbles, span{lit.Pos(), lit.End()})
				}
			}
			return true
		})
	}
	var bad []string
	for _, f := range files {
		timeName := importName(f, "time")
		if timeName == "" {
			continue
		}
		e2e := hasTag(f, "e2e")
		var visit func(n ast.Node) bool
		visit = func(n ast.Node) bool {
			if cc, ok := n.(*ast.CommClause); ok {
				// A select's case <-time.After(d) bounds a wait for
				// something else: look only at its body.
				for _, st := range cc.Body {
					ast.Inspect(st, visit)
				}
				return false
			}
			call := sleepCall(n, timeName)
			if call == nil {
				return true
			}
			pos := fset.Position(call.Pos())
			note := commentBeside(fset, f, pos.Line)
			switch {
			case e2e && note == "":
				bad = append(bad, fmt.Sprintf("%s: an e2e sleep needs a comment saying what it waits for", pos))
			case e2e:
			case strings.HasPrefix(note, "sleepcheck:allow ") && len(strings.TrimSpace(strings.TrimPrefix(note, "sleepcheck:allow"))) > 0:
			case inBubble(bubbles, call):
			default:
				bad = append(bad, fmt.Sprintf("%s: a sleep outside a synctest bubble", pos))
			}
			return true
		}
		ast.Inspect(f, visit)
	}
	return bad, nil
}

type span struct{ from, to token.Pos }

func inBubble(bubbles []span, call *ast.CallExpr) bool {
	for _, b := range bubbles {
		if b.from <= call.Pos() && call.End() <= b.to {
			return true
		}
	}
	return false
}

// sleepCall returns n's call if n sleeps: time.Sleep(d), or a statement
// that only waits for <-time.After(d).
func sleepCall(n ast.Node, timeName string) *ast.CallExpr {
	switch n := n.(type) {
	case *ast.CallExpr:
		if isPkgCall(n, timeName, "Sleep") {
			return n
		}
	case *ast.ExprStmt:
		if u, ok := n.X.(*ast.UnaryExpr); ok && u.Op == token.ARROW {
			if call, ok := u.X.(*ast.CallExpr); ok && isPkgCall(call, timeName, "After") {
				return call
			}
		}
	}
	return nil
}

// importName is the name f gives the package of path, or "".
func importName(f *ast.File, path string) string {
	for _, im := range f.Imports {
		if p, _ := strconv.Unquote(im.Path.Value); p == path {
			if im.Name != nil {
				return im.Name.Name
			}
			return path[strings.LastIndex(path, "/")+1:]
		}
	}
	return ""
}

func isPkgCall(call *ast.CallExpr, pkg, name string) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}

// localFuncLits maps each variable name to the function literals assigned
// to it anywhere in f (run := func(t *testing.T) {...}).
func localFuncLits(f *ast.File) map[string][]*ast.FuncLit {
	m := map[string][]*ast.FuncLit{}
	ast.Inspect(f, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != len(as.Rhs) {
			return true
		}
		for i, l := range as.Lhs {
			id, ok := l.(*ast.Ident)
			lit, isLit := as.Rhs[i].(*ast.FuncLit)
			if ok && isLit {
				m[id.Name] = append(m[id.Name], lit)
			}
		}
		return true
	})
	return m
}

// hasTag reports whether f's build constraint mentions tag.
func hasTag(f *ast.File, tag string) bool {
	for _, cg := range f.Comments {
		if cg.Pos() >= f.Package {
			break
		}
		for _, c := range cg.List {
			expr, err := constraint.Parse(c.Text)
			if err != nil {
				continue
			}
			found := false
			expr.Eval(func(t string) bool { found = found || t == tag; return true })
			if found {
				return true
			}
		}
	}
	return false
}

// commentBeside is the text of the comment on line, or of the comment group
// that ends on the line before it, or "".
func commentBeside(fset *token.FileSet, f *ast.File, line int) string {
	for _, cg := range f.Comments {
		start, end := fset.Position(cg.Pos()).Line, fset.Position(cg.End()).Line
		if start <= line && line <= end || end == line-1 {
			return strings.TrimSpace(cg.Text())
		}
	}
	return ""
}
