package dashboard

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportsNoDaemonPart: the dashboard reads the daemon through Source
// only; it imports no package of the module (relays, resolver, gateway,
// config), so those can change without it.
func TestImportsNoDaemonPart(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if path := strings.Trim(imp.Path.Value, `"`); strings.HasPrefix(path, "github.com/") {
				t.Errorf("%s imports %s: the dashboard may use the standard library only", name, path)
			}
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("checked %d files: the test is not looking at the package", checked)
	}
}
