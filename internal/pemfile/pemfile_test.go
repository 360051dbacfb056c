package pemfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tributary-io/tributary/internal/devcert"
)

// TestCertPool: a CA's PEM makes a pool; a file without a certificate and
// a missing file are errors that name the file.
func TestCertPool(t *testing.T) {
	ca, err := devcert.NewCA("pemfile test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, pem := range map[string][]byte{"ca.pem": ca.PEM, "text.pem": []byte("not a certificate\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), pem, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, wantErr := range map[string]string{
		"ca.pem":      "",
		"text.pem":    "text.pem holds no PEM certificate",
		"missing.pem": "missing.pem: no such file",
	} {
		pool, err := CertPool(filepath.Join(dir, name))
		switch {
		case wantErr == "" && (err != nil || pool == nil):
			t.Errorf("%s: pool %v, error %v", name, pool, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%s: error %v, want one saying %q", name, err, wantErr)
		}
	}
}
