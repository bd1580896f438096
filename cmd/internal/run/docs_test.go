package run_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's configuration table must name every CAFE_* variable the code
// reads, so that the docs cannot fall behind a new setting.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`"(CAFE_[A-Z0-9_]+)"`)
	found := map[string]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			found[string(m[1])] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) < 20 {
		t.Fatalf("found only %d variables; is the walk looking in the right place?", len(found))
	}
	for name, where := range found {
		if !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("%s (used in %s) is not in the README's configuration table", name, where)
		}
	}
}
