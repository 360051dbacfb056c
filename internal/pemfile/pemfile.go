// Package pemfile reads the PEM files that TLS settings name, so that every
// role reads a CA bundle the same way and says the same thing when it is
// missing or holds no certificate.
package pemfile

import (
	"crypto/x509"
	"fmt"
	"os"
)

// CertPool reads the PEM certificates in the file at path into a new pool,
// for tls.Config's RootCAs or ClientCAs. A file without a single PEM
// certificate is an error.
func CertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
