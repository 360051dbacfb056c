package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/internal/testkit"
)

// startSecureCore starts a core with a SASL_SSL listener on addr for the
// bridge (SCRAM user "bridge", allowed everything on topics) and a
// PLAINTEXT listener on plainAddr whose anonymous clients may only read,
// for the verifier; caFile verifies the core's certificate.
func startSecureCore(t *testing.T) (core *testCore, addr, plainAddr, caFile string) {
	t.Helper()
	addr, plainAddr = testkit.FreeAddr(t), testkit.FreeAddr(t)
	core = newCore(t, addr, "")
	ca := testkit.NewCA(t, "bridge test CA")
	caFile = ca.File
	certFile, keyFile := ca.ServerFiles(t, "core")
	core.configure = func(c *server.Config) {
		c.Listeners = []server.ListenerConfig{
			{Name: "SASL_SSL", Protocol: server.ProtocolSASLSSL, Addr: addr},
			{Name: "PLAINTEXT", Protocol: server.ProtocolPlaintext, Addr: plainAddr},
		}
		c.Security = server.SecurityConfig{
			TLS:   server.TLSConfig{CertFile: certFile, KeyFile: keyFile},
			Users: []server.UserConfig{{Name: "bridge", Password: "bridge-secret"}},
			ACLs: []string{
				"allow User:bridge * all topic *",
				"allow User:bridge * idempotent-write cluster kafka-cluster",
				"allow User:ANONYMOUS 127.0.0.1 read topic *",
			},
		}
	}
	core.start()
	return core, addr, plainAddr, caFile
}

// TestSaslSSLExactlyOnce forwards over SASL_SSL with SCRAM-SHA-512 (TLS and
// the SASL exchange on the bridge's own produce connections and on its
// franz-go metadata client) while the core restarts three times: the core
// topic ends with every reading once, in order.
func TestSaslSSLExactlyOnce(t *testing.T) {
	t.Parallel()
	core, addr, plainAddr, caFile := startSecureCore(t)
	e := openEdge(t, t.TempDir(), 2)
	cfg := testBridgeConfig(addr)
	cfg.TLS = &TLSConfig{CAFile: caFile}
	cfg.SASL = &SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "bridge", Password: "bridge-secret"}
	rb := startBridge(t, cfg, e)
	in := e.startIngest(devices("dev", 6), nil, 20, 5*time.Millisecond)
	want := restartCoreWhileIngesting(t, core, in, rb, 3)
	verifyCore(t, core, plainAddr, want)
}

// TestSaslWrongPassword: a bridge with a wrong password forwards nothing
// and says why in its status.
func TestSaslWrongPassword(t *testing.T) {
	t.Parallel()
	core, addr, _, caFile := startSecureCore(t)
	e := openEdge(t, t.TempDir(), 1)
	if err := e.appendReading("dev-1", 0, 0); err != nil {
		t.Fatal(err)
	}
	cfg := testBridgeConfig(addr)
	cfg.TLS = &TLSConfig{CAFile: caFile}
	cfg.SASL = &SASLConfig{Mechanism: "PLAIN", Username: "bridge", Password: "guess"}
	rb := startBridge(t, cfg, e)
	testkit.Eventually(t, 10*time.Second, "a SASL error in the bridge status", func() bool {
		for _, p := range rb.Status().Partitions {
			if strings.Contains(strings.ToLower(p.LastError), "sasl") {
				return true
			}
		}
		return false
	})
	if n := core.records(stream); n > 0 {
		t.Fatalf("core holds %d records from an unauthenticated bridge", n)
	}
}
