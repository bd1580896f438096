package run_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The project's structural rules, checked on every test run so that no
// change can quietly break them:
//
//   - no non-test Go file over 400 lines, no non-test function over 60;
//   - the roles (cashier, barista, caller and what nests below them) import
//     only contracts and its subpackages of cafe's own, never cmd/...;
//   - nothing in the repository points at a design file outside it.
const (
	maxFileLines = 400
	maxFuncLines = 60
)

func repoRoot(t *testing.T) string {
	t.Helper()
	return filepath.Join("..", "..", "..")
}

// goFiles calls visit for every Go file of the repository (not testdata,
// not the tools module).
func goFiles(t *testing.T, visit func(path string, f *ast.File, fset *token.FileSet)) {
	t.Helper()
	root := repoRoot(t)
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "tools" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if strings.HasSuffix(path, "_test.go") || err != nil {
			visit(path, f, fset)
			return nil
		}
		f, err = parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return nil
		}
		visit(path, f, fset)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNoLongFilesOrFunctions(t *testing.T) {
	goFiles(t, func(path string, f *ast.File, fset *token.FileSet) {
		if f == nil || strings.HasSuffix(path, "_test.go") {
			return
		}
		if n := fset.File(f.Pos()).LineCount(); n > maxFileLines {
			t.Errorf("%s has %d lines, more than %d: split it by concept", path, n, maxFileLines)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			if n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1; n > maxFuncLines {
				t.Errorf("%s: func %s has %d lines, more than %d", path, fd.Name.Name, n, maxFuncLines)
			}
		}
	})
}

func TestRolesImportOnlyContracts(t *testing.T) {
	roles := []string{"cashier", "barista", "caller"}
	goFiles(t, func(path string, f *ast.File, _ *token.FileSet) {
		rel, _ := filepath.Rel(repoRoot(t), path)
		role := strings.SplitN(filepath.ToSlash(rel), "/", 2)[0]
		isRole := false
		for _, r := range roles {
			isRole = isRole || role == r
		}
		if !isRole || f == nil {
			return
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "cafe/") && !strings.HasPrefix(p, "cafe/contracts") && !strings.HasPrefix(p, "cafe/"+role) {
				t.Errorf("%s imports %s: a role imports only cafe/contracts/... (cmd/ wires roles, not the other way)", rel, p)
			}
		}
	})
}

func TestNothingPointsOutsideTheRepository(t *testing.T) {
	root := repoRoot(t)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || strings.HasSuffix(path, ".sum") || strings.HasSuffix(path, ".png") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, bad := range []string{"DESIGN" + ".md", "../" + "shared"} {
			if strings.Contains(string(data), bad) {
				t.Errorf("%s mentions %s: the repository must explain itself (README, package docs, specs)", path, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
