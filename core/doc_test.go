package core

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// coreDecls is what the package's non-test files declare: per file, its
// functions, methods (as Type.method) and types; per type, its fields,
// methods and embedded types.
type coreDecls struct {
	inFile   map[string]map[string]bool // file -> name or Type.method
	members  map[string]map[string]bool // type -> field or method
	embedded map[string][]string        // type -> embedded type names
}

func parseCoreDecls(t *testing.T) *coreDecls {
	t.Helper()
	d := &coreDecls{inFile: map[string]map[string]bool{}, members: map[string]map[string]bool{}, embedded: map[string][]string{}}
	add := func(m map[string]map[string]bool, k, v string) {
		if m[k] == nil {
			m[k] = map[string]bool{}
		}
		m[k][v] = true
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			switch decl := decl.(type) {
			case *ast.FuncDecl:
				if decl.Recv == nil {
					add(d.inFile, name, decl.Name.Name)
					continue
				}
				recv := recvName(decl.Recv.List[0].Type)
				add(d.inFile, name, recv+"."+decl.Name.Name)
				add(d.inFile, name, decl.Name.Name)
				add(d.members, recv, decl.Name.Name)
			case *ast.GenDecl:
				for _, spec := range decl.Specs {
					ts, ok := spec.(*ast.TypeSpec)
					if !ok {
						continue
					}
					add(d.inFile, name, ts.Name.Name)
					d.addMembers(ts, add)
				}
			}
		}
	}
	return d
}

// recvName is the type name of a method's receiver: T, *T, T[P] or *T[P].
func recvName(typ ast.Expr) string {
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	if ix, ok := typ.(*ast.IndexExpr); ok {
		typ = ix.X
	}
	return typ.(*ast.Ident).Name
}

// addMembers records a struct's fields and embedded types, or an
// interface's methods.
func (d *coreDecls) addMembers(ts *ast.TypeSpec, add func(map[string]map[string]bool, string, string)) {
	var fields *ast.FieldList
	switch typ := ts.Type.(type) {
	case *ast.StructType:
		fields = typ.Fields
	case *ast.InterfaceType:
		fields = typ.Methods
	default:
		return
	}
	for _, f := range fields.List {
		if len(f.Names) == 0 {
			if id, ok := f.Type.(*ast.Ident); ok {
				d.embedded[ts.Name.Name] = append(d.embedded[ts.Name.Name], id.Name)
				add(d.members, ts.Name.Name, id.Name)
			}
			continue
		}
		for _, n := range f.Names {
			add(d.members, ts.Name.Name, n.Name)
		}
	}
}

// hasMember reports whether typ has member, directly or promoted from an
// embedded type.
func (d *coreDecls) hasMember(typ, member string) bool {
	if d.members[typ][member] {
		return true
	}
	for _, e := range d.embedded[typ] {
		if d.hasMember(e, member) {
			return true
		}
	}
	return false
}

// codeLike reports whether a word before a file name is an identifier
// rather than prose: Type.member, or camelCase.
func codeLike(name string) bool {
	return strings.Contains(name, ".") || strings.ContainsAny(name[1:], "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

// TestDocNamesExist keeps doc.go's walk of a PUBLISH true to the code: every
// Type.member it names exists (a field or method, promoted ones too), every
// identifier it places in a file ("name (file.go)") is declared there, and every
// file it names exists.
func TestDocNamesExist(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	// The comment as one text: a reference may span lines.
	var b strings.Builder
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "//"); ok {
			b.WriteString(strings.TrimSpace(rest))
			b.WriteByte(' ')
		}
	}
	doc := b.String()
	d := parseCoreDecls(t)

	members := 0
	for _, m := range regexp.MustCompile(`\b([A-Za-z]\w*)\.([A-Za-z]\w*)\b`).FindAllStringSubmatch(doc, -1) {
		typ, member := m[1], m[2]
		if _, known := d.members[typ]; !known || member == "go" {
			continue // not a core type (runtime.Gosched), or a file name
		}
		members++
		if !d.hasMember(typ, member) {
			t.Errorf("doc.go names %s.%s: %s has no such field or method", typ, member, typ)
		}
	}
	placed := 0
	for _, m := range regexp.MustCompile(`\b([A-Za-z]\w*(?:\.[A-Za-z]\w*)?)[ ,]+\(?(\w+\.go)\b`).FindAllStringSubmatch(doc, -1) {
		name, file := m[1], m[2]
		if strings.HasSuffix(name, ".go") || !codeLike(name) {
			continue // prose: "an inline subscription (inline.go)"
		}
		placed++
		if !d.inFile[file][name] {
			t.Errorf("doc.go places %s in %s, which does not declare it", name, file)
		}
	}
	for _, m := range regexp.MustCompile(`\b\w+\.(go|md)\b`).FindAllString(doc, -1) {
		if _, err := os.Stat(m); err != nil {
			t.Errorf("doc.go names %s: %v", m, err)
		}
	}
	// The patterns must keep finding what doc.go names, or the test checks
	// nothing.
	if members < 20 || placed < 15 {
		t.Errorf("found %d Type.member and %d name-in-file references in doc.go, want at least 20 and 15", members, placed)
	}
}
