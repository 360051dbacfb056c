package auth

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"
)

func TestAuthenticateCert(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{CertIdentity: "ou"}); err == nil {
		t.Fatal("unknown cert_identity accepted")
	}
	if _, err := New(Config{Devices: []Device{{Username: "d1"}}}); err == nil {
		t.Fatal("a device without password hash accepted without cert_identity")
	}
	a, err := New(Config{CertIdentity: "san", Devices: []Device{{Username: "d1.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "ignored"}, DNSNames: []string{"d1.example"}}
	if name, err := a.AuthenticateCert("", cert); err != nil || name != "d1.example" {
		t.Fatalf("san identity: %q %v", name, err)
	}
	if _, err := a.AuthenticateCert("other", cert); !errors.Is(err, ErrCertificate) {
		t.Fatalf("mismatching username: %v", err)
	}
	if _, err := a.AuthenticateCert("", &x509.Certificate{DNSNames: []string{"d9"}}); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unknown device: %v", err)
	}
	if err := a.Authenticate("d1.example", []byte("pw")); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("password login of a certificate-only device: %v", err)
	}
}
