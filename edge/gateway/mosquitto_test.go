package gateway

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/tributary-io/tributary/edge/ingest"
)

// needMosquittoPub returns the path of mosquitto_pub, skipping the test
// where it is not installed.
func needMosquittoPub(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Skip("mosquitto_pub not installed (Debian package mosquitto-clients)")
	}
	return bin
}

// mosquittoPub runs the real mosquitto_pub against the gateway.
func mosquittoPub(t *testing.T, bin, addr string, args ...string) error {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-h", host, "-p", port}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mosquitto_pub %v: %w: %s", args, err, out)
	}
	return nil
}

// TestMosquittoPub drives the gateway with Debian's mosquitto_pub over MQTT
// 3.1.1 and 5, with and without credentials.
func TestMosquittoPub(t *testing.T) {
	t.Parallel()
	bin := needMosquittoPub(t)
	g, _ := startGateway(t, authConfig(t))
	addr := g.MQTTAddr()
	for i, v := range []string{"mqttv311", "mqttv5"} {
		msg := string(jsonReading("dev-1", uint64(i), 1_700_000_000_000+int64(i)))
		args := []string{"-V", v, "-q", "1", "-i", "mp-" + v, "-u", "dev-1", "-P", "pw-1", "-t", "sensors/dev-1/reading", "-m", msg}
		if v == "mqttv5" {
			args = append(args, "-D", "publish", "content-type", "application/json")
		}
		if err := mosquittoPub(t, bin, addr, args...); err != nil {
			t.Fatalf("%s with credentials: %v", v, err)
		}
		if err := mosquittoPub(t, bin, addr, "-V", v, "-q", "1", "-u", "dev-1", "-P", "wrong", "-t", "sensors/dev-1/reading", "-m", msg); err == nil {
			t.Fatalf("%s with a wrong password succeeded", v)
		}
		if err := mosquittoPub(t, bin, addr, "-V", v, "-q", "1", "-t", "sensors/dev-1/reading", "-m", msg); err == nil {
			t.Fatalf("%s without credentials succeeded on a gateway that requires them", v)
		}
		// A foreign topic: 3.1.1 gets disconnected, 5 gets a PUBACK with 0x87;
		// either way nothing is stored (checked below).
		_ = mosquittoPub(t, bin, addr, "-V", v, "-q", "1", "-u", "dev-1", "-P", "pw-1", "-t", "sensors/dev-2/reading",
			"-m", string(jsonReading("dev-2", 9, 1)))
	}
	recs := readStream(t, g.Topics(), "sensors")
	if len(recs) != 2 {
		t.Fatalf("stored %d records, want 2", len(recs))
	}
	for i, r := range recs {
		if string(r.Key) != "dev-1" || r.Timestamp != 1_700_000_000_000+int64(i) || mustHeader(t, r, "content-type") != "application/json" {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	c := g.Ingest().Counts()
	if c.Refused[ingest.ReasonACL] != 2 || c.Connects["refused"] != 4 {
		t.Fatalf("counts %+v: want 2 ACL refusals, 4 refused connects", c)
	}

	// Lab mode: anonymous publishing, both versions, QoS 0 and 2 (each its
	// own seq: the same seq and ts twice would be a re-send, stored once).
	cfg := testConfig(t)
	g2, _ := startGateway(t, cfg)
	for i, v := range []string{"mqttv311", "mqttv5"} {
		for _, q := range []string{"0", "2"} {
			if err := mosquittoPub(t, bin, g2.MQTTAddr(), "-V", v, "-q", q, "-t", "sensors/anon/reading", "-m", string(jsonReading("anon", uint64(10*i)+uint64(q[0]-'0'), 1))); err != nil {
				t.Fatalf("anonymous %s qos %s: %v", v, q, err)
			}
		}
	}
	if recs := waitRecords(t, g2.Topics(), "sensors", 4); len(recs) != 4 {
		t.Fatalf("anonymous: stored %d records, want 4", len(recs))
	}
}
