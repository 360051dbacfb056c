package testkit

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/tributary-io/tributary/internal/devcert"
)

// Certs is a throwaway CA and a server certificate it signed for
// 127.0.0.1 and localhost, as files and as TLS configurations.
type Certs struct {
	CertFile, KeyFile string // the server's, PEM
	CAFile            string // the CA's certificate, PEM
	Pool              *x509.CertPool
	Server, Client    *tls.Config // a server with the certificate; a client trusting the CA
}

// ServerCerts makes Certs in the test's temporary directory.
func ServerCerts(t testing.TB) Certs {
	t.Helper()
	ca, err := devcert.NewCA("tributary test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Server("tributary-test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := Certs{CAFile: filepath.Join(dir, "ca.crt"), Pool: ca.Pool()}
	if c.CertFile, c.KeyFile, err = leaf.WriteFiles(dir, "server"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.CAFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cert, err := leaf.TLS()
	if err != nil {
		t.Fatal(err)
	}
	c.Server = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	c.Client = &tls.Config{RootCAs: c.Pool, MinVersion: tls.VersionTLS12}
	return c
}
