package server

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestTLSReloadOnFileChange replaces the broker's certificate files while a
// client is connected: new handshakes present the new certificate (signed
// by a second CA), and the open connection keeps working.
func TestTLSReloadOnFileChange(t *testing.T) {
	t.Parallel()
	ca1 := testkit.NewCA(t, "first CA")
	ca2 := testkit.NewCA(t, "second CA")
	certFile, keyFile := ca1.ServerFiles(t, "core")
	cfg := testConfig(t.TempDir())
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

	// Write the new pair elsewhere and rename it over the old, as
	// certificate tooling does, so no reader sees half a file.
	c2, k2 := ca2.ServerFiles(t, "core")
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
