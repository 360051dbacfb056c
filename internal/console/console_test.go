package console

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Each tier's console serves its own page and script and the shared files,
// through http.FileServerFS as the servers use it.
func TestTierFiles(t *testing.T) {
	t.Parallel()
	for tier, fsys := range map[string]fs.FS{"core": Core, "edge": Edge} {
		static, err := fs.Sub(fsys, "console")
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.FileServerFS(static))
		defer srv.Close()
		for path, want := range map[string]string{
			"/":            tier + " console</span>",
			"/console.js":  "Tributary " + tier + " console",
			"/common.js":   "function drawChart",
			"/console.css": "--accent",
		} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
				t.Errorf("%s %s: %d, want %q in the body", tier, path, resp.StatusCode, want)
			}
		}
		if _, err := fs.Stat(static, "missing.js"); err == nil {
			t.Errorf("%s: a file that exists in no layer opened", tier)
		}
	}
}
