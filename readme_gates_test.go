package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestREADMEGates: the README's table of the CUDA paths written without a
// GPU lists every gate cuda/devnet has — each gateOpen("DISTILL_CUDA_…",
// constant) call — and nothing else, each with its default: on where the
// constant is true, off where it is false. The table is how a user learns
// what runs on their card; a gate turned on, added or removed in the code
// fails here until the README says so.
func TestREADMEGates(t *testing.T) {
	code := devnetGates(t)
	if len(code) < 20 {
		t.Fatalf("found %d gates in cuda/devnet; the parse below is missing them", len(code))
	}
	doc := readmeGates(t)
	for name, on := range code {
		got, ok := doc[name]
		switch {
		case !ok:
			t.Errorf("README.md's gate table has no row for %s (default %s)", name, onOff(on))
		case got != on:
			t.Errorf("README.md says %s is %s by default; cuda/devnet's constant says %s", name, onOff(got), onOff(on))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(doc)) {
		if _, ok := code[name]; !ok {
			t.Errorf("README.md's gate table lists %s, which cuda/devnet does not gate", name)
		}
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// devnetGates parses cuda/devnet's sources (build tags aside: the parser
// reads them as text) for gateOpen(name, constant) and each constant's
// boolean value.
func devnetGates(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("cuda", "devnet", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("cuda/devnet's sources: %v (%d files)", err, len(files))
	}
	fset := token.NewFileSet()
	consts := map[string]bool{}
	calls := map[string]string{} // gate → its constant's name
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if i < len(n.Values) {
						if v, ok := n.Values[i].(*ast.Ident); ok && (v.Name == "true" || v.Name == "false") {
							consts[id.Name] = v.Name == "true"
						}
					}
				}
			case *ast.CallExpr:
				fn, ok := n.Fun.(*ast.Ident)
				if !ok || fn.Name != "gateOpen" || len(n.Args) != 2 {
					return true
				}
				lit, ok1 := n.Args[0].(*ast.BasicLit)
				c, ok2 := n.Args[1].(*ast.Ident)
				if !ok1 || !ok2 || lit.Kind != token.STRING {
					t.Errorf("%s: gateOpen's arguments are not a name and a constant", fset.Position(n.Pos()))
					return true
				}
				name, _ := strconv.Unquote(lit.Value)
				calls[name] = c.Name
			}
			return true
		})
	}
	gates := map[string]bool{}
	for name, c := range calls {
		v, ok := consts[c]
		if !ok {
			t.Errorf("gate %s: its constant %s is not a boolean literal in cuda/devnet", name, c)
		}
		gates[name] = v
	}
	return gates
}

// gateRow is a row of the README's gate table: the variable, the path,
// its default.
var gateRow = regexp.MustCompile("^\\| `(DISTILL_CUDA_[A-Z0-9_]+)` \\|[^|]*\\| (on|off) \\|")

func readmeGates(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		m := gateRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if _, dup := rows[m[1]]; dup {
			t.Errorf("README.md:%d: a second row for %s", i+1, m[1])
		}
		rows[m[1]] = m[2] == "on"
	}
	return rows
}
