package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tributary-io/tributary/bridge"
	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/edge/auth"
	"github.com/tributary-io/tributary/edge/gateway"
	"github.com/tributary-io/tributary/firmware-sim/summary"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/internal/testkit/coretest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func sim(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := runMain(ctx, args, &out, &errb)
	if ctx.Err() != nil {
		t.Fatalf("%v ran into the test timeout", args)
	}
	return code, out.String() + errb.String()
}

// startEdge runs a real edge gateway on loopback; stop shuts it down
// gracefully so its logs can be read.
func startEdge(t *testing.T, devices int, password string, attach func(*gateway.Gateway)) (g *gateway.Gateway, dir string, stop func()) {
	t.Helper()
	return startEdgeWith(t, devices, password, attach, nil)
}

func startEdgeWith(t *testing.T, devices int, password string, attach func(*gateway.Gateway), tweak func(*gateway.Config)) (g *gateway.Gateway, dir string, stop func()) {
	t.Helper()
	cfg := gateway.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.MQTT.Address = "127.0.0.1:0"
	cfg.HTTP.Address = "-"
	cfg.ShutdownTimeout = 10 * time.Second
	// One cheap hash for every device: bcrypt at its default cost would
	// make 50 logins cost seconds of CPU under the race detector.
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for i := range devices {
		cfg.Auth.Devices = append(cfg.Auth.Devices, auth.Device{Username: fmt.Sprintf("dev-%06d", i), PasswordHash: string(h)})
	}
	if tweak != nil {
		tweak(&cfg)
	}
	g, err = gateway.Open(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if attach != nil {
		attach(g)
	}
	return g, cfg.DataDir, testkit.Run(t, "edge", g.Run)
}

// TestFleetThroughEdgeThenVerifyEdgeData is the edge end-to-end check:
// 50 devices with logins publish for a few seconds, with bad traffic mixed
// in; after the edge stops, its logs hold every acknowledged reading once.
func TestFleetThroughEdgeThenVerifyEdgeData(t *testing.T) {
	t.Parallel()
	g, dir, stop := startEdge(t, 50, "s3cret", nil)
	sum := filepath.Join(t.TempDir(), "run.json")
	code, out := sim(t, "run", "--broker", g.MQTTAddr(), "--devices", "50", "--rate", "10", "--duration", "3s",
		"--password", "s3cret", "--summary", sum, "--quiet", "--seed", "5",
		"--bad-malformed", "0.03", "--bad-oversized", "0.01", "--bad-wrong-topic", "0.01")
	if code != 0 {
		t.Fatalf("run exit %d:\n%s", code, out)
	}
	s, err := summary.Read(sum)
	if err != nil {
		t.Fatal(err)
	}
	// No speed goal: a loaded machine gets fewer readings through in 3 s;
	// what matters is that they all arrive (verify, below).
	if s.Totals.Devices != 50 || s.Totals.Acked < 50 || s.Totals.Required != s.Totals.Acked || s.Totals.BadSent == 0 {
		t.Fatalf("run totals %+v\n%s", s.Totals, out)
	}
	stop()

	code, out = sim(t, "verify", "--edge-data", dir, "--summary", sum)
	if code != 0 {
		for _, d := range s.Devices {
			if d.Resent > 0 || d.Connects != 1 {
				t.Logf("device %+v", d)
			}
		}
		t.Fatalf("verify exit %d:\n%s", code, out)
	}
	want := fmt.Sprintf("expected %d  received %d  lost 0  duplicated 0  out-of-order 0", s.Totals.Required, s.Totals.Required)
	if !strings.Contains(out, want) || !strings.Contains(out, "undecodable 0  not-readings 0  key-mismatch 0") {
		t.Fatalf("verify output lacks %q:\n%s", want, out)
	}
	t.Logf("%s", out)

	// The malformed publishes were kept, in the dead-letter stream.
	code, out = sim(t, "verify", "--edge-data", dir, "--topic", "sensors.dlq")
	if code != 0 || !strings.Contains(out, "undecodable ") || strings.Contains(out, "undecodable 0 ") {
		t.Fatalf("dead letters: exit %d:\n%s", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"run"}, // neither duration nor count
		{"run", "--count", "1", "--qos", "2"},
		{"run", "--count", "1", "--encoding", "xml"},
		{"run", "--count", "1", "--bad-malformed", "0.8", "--bad-oversized", "0.8"},
		{"verify", "--from", "yesterday"},
		{"verify", "--summary", "/nonexistent/run.json"},
	} {
		if code, out := sim(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2:\n%s", args, code, out)
		}
	}
	if code, out := sim(t, "help", "verify"); code != 0 || !strings.Contains(out, "--edge-data") && !strings.Contains(out, "-edge-data") {
		t.Errorf("help verify: exit %d:\n%s", code, out)
	}
}

// TestFleetThroughEdgeBridgeCoreThenVerifyKafka is the whole data path:
// devices → edge (MQTT, durable log) → bridge → core (Kafka protocol) →
// verify consuming the core topic with franz-go.
func TestFleetThroughEdgeBridgeCoreThenVerifyKafka(t *testing.T) {
	t.Parallel()
	core := coretest.Start(t, server.Config{KafkaAddr: "127.0.0.1:0"}, nil)
	g, _, stop := startEdge(t, 50, "pw", func(g *gateway.Gateway) {
		b, err := bridge.New(bridge.Config{Brokers: []string{core.Addr()}, ScanInterval: 100 * time.Millisecond,
			BackoffMax: time.Second}, g.Topics(), g.Meta(), nil, quiet)
		if err != nil {
			t.Fatal(err)
		}
		g.Go("bridge", b.Run)
	})
	defer stop()

	dir := t.TempDir()
	sum, state := filepath.Join(dir, "run.json"), filepath.Join(dir, "state.json")
	code, out := sim(t, "run", "--broker", g.MQTTAddr(), "--devices", "50", "--rate", "10", "--duration", "2s",
		"--password", "pw", "--summary", sum, "--state", state, "--quiet", "--encoding", "senml-cbor")
	if code != 0 {
		t.Fatalf("run exit %d:\n%s", code, out)
	}
	code, out = sim(t, "verify", "--brokers", core.Addr(), "--summary", sum, "--timeout", "30s", "--strict-order")
	if code != 0 || !strings.Contains(out, "lost 0  duplicated 0  out-of-order 0") || !strings.Contains(out, "PASS") {
		t.Fatalf("verify exit %d:\n%s", code, out)
	}
	t.Logf("%s", out)
	first, err := summary.Read(sum)
	if err != nil {
		t.Fatal(err)
	}

	// A second run continues each device's numbering; verifying from the
	// run's start time judges it alone, and earlier readings are not lost.
	code, out = sim(t, "run", "--broker", g.MQTTAddr(), "--devices", "50", "--rate", "10", "--count", "5",
		"--password", "pw", "--summary", sum, "--state", state, "--quiet", "--encoding", "json")
	if code != 0 {
		t.Fatalf("second run exit %d:\n%s", code, out)
	}
	s, err := summary.Read(sum)
	if err != nil {
		t.Fatal(err)
	}
	if s.Devices[0].FirstSeq == 0 || s.Totals.Required != 250 {
		t.Fatalf("second run did not continue numbering: %+v", s.Devices[0])
	}
	code, out = sim(t, "verify", "--brokers", core.Addr(), "--summary", sum, "--timeout", "30s")
	want := fmt.Sprintf("expected 250  received 250  lost 0  duplicated 0  out-of-order 0  earlier-runs %d  later-runs 0", first.Totals.Generated)
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("second verify exit %d:\n%s", code, out)
	}
}

// TestTLSRunAgainstEdge runs devices over the edge's TLS listener, trusting
// its certificate through --ca-file.
func TestTLSRunAgainstEdge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certs := testkit.ServerCerts(t)
	certFile, keyFile := certs.CertFile, certs.KeyFile
	g, data, stop := startEdgeWith(t, 5, "pw", nil, func(c *gateway.Config) {
		c.MQTT.TLS = gateway.TLSConfig{Address: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}
	})
	sum := filepath.Join(dir, "run.json")
	code, out := sim(t, "run", "--broker", g.TLSAddr(), "--tls", "--ca-file", certs.CAFile, "--devices", "5",
		"--count", "10", "--rate", "50", "--password", "pw", "--summary", sum, "--quiet", "--encoding", "json")
	if code != 0 || !strings.Contains(out, "acked 50 ") {
		t.Fatalf("run exit %d:\n%s", code, out)
	}
	stop()
	if code, out = sim(t, "verify", "--edge-data", data, "--summary", sum); code != 0 {
		t.Fatalf("verify exit %d:\n%s", code, out)
	}

	// Without the CA the broker's certificate is not trusted: nothing is
	// sent, and the run says so instead of hanging.
	code, out = sim(t, "run", "--broker", "ssl://"+g.TLSAddr(), "--devices", "1", "--count", "1", "--duration", "500ms",
		"--drain-timeout", "100ms", "--quiet")
	if code != 0 || !strings.Contains(out, "acked 0 ") {
		t.Fatalf("untrusted run exit %d:\n%s", code, out)
	}
}
