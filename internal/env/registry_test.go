package env_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// varName is what an environment variable of ours looks like.
var varName = regexp.MustCompile(`^(COLLECTOR|PLATFORM)_[A-Z0-9_]+$`)

// envFuncs read or change the environment.
var envFuncs = map[string]bool{"Getenv": true, "LookupEnv": true, "Setenv": true, "Unsetenv": true, "Environ": false}

// TestOneRegistry fails on a COLLECTOR_* or PLATFORM_* literal, or a call
// to os.Getenv or os.LookupEnv (and their syscall twins), anywhere but
// this package: every name the binaries and tests read is declared here,
// once.
func TestOneRegistry(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	self := filepath.Join(root, "internal", "env")
	var bad []string
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || filepath.Dir(path) == self {
			return nil
		}
		files++
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if n.Kind == token.STRING {
					if s, err := strconv.Unquote(n.Value); err == nil && varName.MatchString(s) {
						bad = append(bad, rel+":"+strconv.Itoa(fset.Position(n.Pos()).Line)+": literal "+s+" (declare it in internal/env)")
					}
				}
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && (id.Name == "os" || id.Name == "syscall") && envFuncs[n.Sel.Name] {
					bad = append(bad, rel+":"+strconv.Itoa(fset.Position(n.Pos()).Line)+": "+id.Name+"."+n.Sel.Name+" (use env.Get or env.Lookup)")
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("walked %d Go files from %s: the walk is wrong", files, root)
	}
	for _, b := range bad {
		t.Error(b)
	}
}

// The guard sees what it guards: a file with both forbidden forms is
// reported (checked on a temporary copy, so the repository stays clean).
func TestRegistryGuardFires(t *testing.T) {
	src := "package x\nimport \"os\"\nvar _ = os.Getenv(\"PLATFORM_NOT_DECLARED\")\n"
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var lit, call bool
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BasicLit:
			s, _ := strconv.Unquote(n.Value)
			lit = lit || varName.MatchString(s)
		case *ast.SelectorExpr:
			id, ok := n.X.(*ast.Ident)
			call = call || ok && id.Name == "os" && envFuncs[n.Sel.Name]
		}
		return true
	})
	if !lit || !call {
		t.Errorf("the guard misses a literal (%v) or a call (%v)", lit, call)
	}
	_ = os.Args
}
