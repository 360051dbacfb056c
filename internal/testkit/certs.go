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
	ca := NewCA(t, "tributary test CA")
	leaf, err := ca.Server("tributary-test")
	if err != nil {
		t.Fatal(err)
	}
	c := Certs{CAFile: ca.File, Pool: ca.Pool()}
	if c.CertFile, c.KeyFile, err = leaf.WriteFiles(ca.Dir, "server"); err != nil {
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

// CA is a throwaway certificate authority for a test. Its certificate is
// in File (PEM), in Dir, a temporary directory where ServerFiles writes
// what it signs too.
type CA struct {
	*devcert.CA
	Dir, File string
}

// NewCA makes a CA named name and writes its certificate.
func NewCA(t testing.TB, name string) CA {
	t.Helper()
	ca, err := devcert.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	c := CA{CA: ca, Dir: t.TempDir()}
	c.File = filepath.Join(c.Dir, "ca.crt")
	if err := os.WriteFile(c.File, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// ServerFiles signs a server certificate named name (for 127.0.0.1 and
// localhost) and writes it and its key, PEM, in Dir.
func (c CA) ServerFiles(t testing.TB, name string) (certFile, keyFile string) {
	t.Helper()
	leaf, err := c.Server(name)
	return c.writeLeaf(t, name, leaf, err)
}

// PeerFiles signs a broker's certificate for its links to the other
// brokers (valid as server and as client, for mutual TLS) named name, and
// writes it and its key, PEM, in Dir.
func (c CA) PeerFiles(t testing.TB, name string) (certFile, keyFile string) {
	t.Helper()
	leaf, err := c.Peer(name)
	return c.writeLeaf(t, name, leaf, err)
}

func (c CA) writeLeaf(t testing.TB, name string, leaf devcert.Leaf, signErr error) (certFile, keyFile string) {
	t.Helper()
	if signErr != nil {
		t.Fatalf("sign %s: %v", name, signErr)
	}
	certFile, keyFile, err := leaf.WriteFiles(c.Dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
