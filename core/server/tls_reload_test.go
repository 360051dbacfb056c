package server

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/devcert"
	"github.com/tributary-io/tributary/internal/testkit"
)

// TestTLSReloadOnFileChange replaces the broker's certificate files while a
// client is connected: new handshakes present the new certificate (signed
// by a second CA), and the open connection keeps working.
func TestTLSReloadOnFileChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca1, _ := devcert.NewCA("first CA")
	ca2, _ := devcert.NewCA("second CA")
	leaf1, err := ca1.Server("core")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := leaf1.WriteFiles(dir, "core")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(filepath.Join(dir, "data"))
	cfg.Listeners = []ListenerConfig{{Name: "SSL", Protocol: ProtocolSSL, Addr: "127.0.0.1:0"}}
	cfg.Security = SecurityConfig{TLS: TLSConfig{CertFile: certFile, KeyFile: keyFile, ReloadInterval: 50 * time.Millisecond},
		AllowEveryoneIfNoACLFound: true}
	srv := startServer(t, cfg)
	addr := srv.ListenerAddr("SSL")

	both := x509.NewCertPool()
	both.AddCert(ca1.Cert)
	both.AddCert(ca2.Cert)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTLSConfig(&tls.Config{RootCAs: both}), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testkit.Context(t, 20*time.Second)
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	leaf2, err := ca2.Server("core")
	if err != nil {
		t.Fatal(err)
	}
	// Write the new pair under other names and rename over the old, as
	// certificate tooling does, so no reader sees half a file.
	c2, k2, err := leaf2.WriteFiles(dir, "core-new")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(k2, keyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(c2, certFile); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the listener serving the new certificate", func() bool {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: both})
		if err != nil {
			return false
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Issuer.CommonName == "second CA"
	})
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "after-reload", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("open client after reload: %v", err)
	}
}
