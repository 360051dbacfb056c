package server

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/tributary-io/tributary/internal/testkit"
)

// kcatResult runs kcat and returns its output and error without failing.
func kcatResult(stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// TestKcatSaslSSL drives librdkafka (kcat) over SASL_SSL with
// SCRAM-SHA-512, verifying the broker hostname against the dev
// certificate: refused with a wrong password and with no ACL, served
// (produce, then consume through a group) after the ACLs are added. Then
// the same through the SSL listener with only a client certificate.
func TestKcatSaslSSL(t *testing.T) {
	t.Parallel()
	needKcat(t)
	e := startSecure(t)
	ctx := testkit.Context(t, 60*time.Second)
	sasl := func(user, pass string) []string {
		return []string{"-b", e.saslSSL, "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
			"-X", "sasl.username=" + user, "-X", "sasl.password=" + pass, "-X", "ssl.ca.location=" + e.caFile,
			"-X", "ssl.endpoint.identification.algorithm=https", "-m", "5"}
	}
	lines := "one\ntwo\nthree\n"

	if _, stderr, err := kcatResult(lines, append(sasl("alice", "wrong"), "-P", "-t", "kc.sensors")...); err == nil {
		t.Fatalf("kcat with a wrong password succeeded; stderr: %s", stderr)
	} else if !strings.Contains(stderr, "Authentication failed") && !strings.Contains(stderr, "SASL") {
		t.Logf("wrong password stderr: %s", stderr)
	}
	if _, stderr, err := kcatResult(lines, append(sasl("alice", "alice-secret"), "-P", "-t", "kc.sensors")...); err == nil {
		t.Fatalf("kcat without ACLs succeeded; stderr: %s", stderr)
	} else if !strings.Contains(stderr, "authoriz") && !strings.Contains(stderr, "Authoriz") {
		t.Logf("no-ACL stderr: %s", stderr)
	}

	admin := e.admin(t)
	if _, err := admin.CreateTopic(ctx, 2, 1, nil, "kc.sensors"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	for _, b := range []*kadm.ACLBuilder{
		kadm.NewACLs().Allow("User:alice", "User:device-7").AllowHosts().Topics("kc.").
			ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead, kadm.OpWrite, kadm.OpDescribe),
		kadm.NewACLs().Allow("User:alice", "User:device-7").AllowHosts().Groups("kc-group").ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead),
	} {
		if _, err := admin.CreateACLs(ctx, b); err != nil {
			t.Fatalf("create ACLs: %v", err)
		}
	}

	kcat(t, lines, append(sasl("alice", "alice-secret"), "-P", "-t", "kc.sensors", "-X", "request.required.acks=all")...)
	out := kcat(t, "", append(sasl("alice", "alice-secret"), "-G", "kc-group", "-X", "auto.offset.reset=earliest", "-e", "-q", "kc.sensors")...)
	if got := strings.Fields(out); len(got) != 3 {
		t.Fatalf("group consume over SASL_SSL read %q, want 3 lines", out)
	}

	// mTLS only: the certificate's CN is the principal.
	ssl := []string{"-b", e.ssl, "-X", "security.protocol=SSL", "-X", "ssl.ca.location=" + e.caFile, "-m", "5"}
	certFile, keyFile := writeClientCert(t, e, "device-7")
	mtls := append(ssl, "-X", "ssl.certificate.location="+certFile, "-X", "ssl.key.location="+keyFile)
	kcat(t, "four\n", append(mtls, "-P", "-t", "kc.sensors")...)
	out = kcat(t, "", append(mtls, "-C", "-t", "kc.sensors", "-o", "beginning", "-e", "-q")...)
	if got := strings.Fields(out); len(got) != 4 {
		t.Fatalf("mTLS consume read %q, want 4 lines", out)
	}
	// Without a certificate the SSL listener's client is anonymous: refused.
	if _, stderr, err := kcatResult("five\n", append(ssl, "-P", "-t", "kc.sensors")...); err == nil {
		t.Fatalf("anonymous SSL produce succeeded; stderr: %s", stderr)
	}
}

func writeClientCert(t *testing.T, e *secureEnv, cn string) (string, string) {
	t.Helper()
	leaf, err := e.ca.Client(cn, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := leaf.WriteFiles(e.dir, cn)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// TestDevCertsScript makes certificates with deploy/dev-certs.sh (openssl)
// and uses them as documented: the broker's for an SSL listener requiring
// client certificates, alice's with kcat, whose CN is her principal.
func TestDevCertsScript(t *testing.T) {
	t.Parallel()
	needKcat(t)
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	if out, err := exec.Command("../../deploy/dev-certs.sh", dir, "core", "alice").CombinedOutput(); err != nil {
		t.Fatalf("dev-certs.sh: %v\n%s", err, out)
	}
	cfg := testConfig(filepath.Join(dir, "data"))
	cfg.Listeners = []ListenerConfig{{Name: "SSL", Protocol: ProtocolSSL, Addr: "127.0.0.1:0"}}
	cfg.Security = SecurityConfig{
		TLS: TLSConfig{CertFile: filepath.Join(dir, "core.crt"), KeyFile: filepath.Join(dir, "core.key"),
			CAFile: filepath.Join(dir, "ca.crt"), ClientAuth: "require", PrincipalRule: "CN"},
		ACLs: []string{"allow User:alice * all topic *", "allow User:alice * create cluster kafka-cluster"},
	}
	srv := startServer(t, cfg)
	args := []string{"-b", srv.ListenerAddr("SSL"), "-X", "security.protocol=SSL", "-X", "ssl.ca.location=" + filepath.Join(dir, "ca.crt"),
		"-X", "ssl.certificate.location=" + filepath.Join(dir, "alice.crt"), "-X", "ssl.key.location=" + filepath.Join(dir, "alice.key"), "-m", "5"}
	kcat(t, "hello\n", append(args, "-P", "-t", "alice-topic")...)
	if out := kcat(t, "", append(args, "-C", "-t", "alice-topic", "-o", "beginning", "-e", "-q")...); strings.TrimSpace(out) != "hello" {
		t.Fatalf("read %q", out)
	}
}
