package gateway

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/edge/ingest"
	"github.com/tributary-io/tributary/internal/testkit"
)

// TestRealDiskFull fills a small tmpfs until appends fail with ENOSPC: the
// gateway must refuse (0x97 for MQTT 5 QoS 1), keep running, keep every
// acknowledged reading, and accept again once space is freed. It needs root
// to mount the tmpfs and is skipped otherwise.
func TestRealDiskFull(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	cfg := testConfig(t)
	cfg.DataDir = filepath.Join(mnt, "edge")
	cfg.Log.SegmentBytes = 64 << 10
	cfg.Ingest.Streams = map[string]ingest.StreamConfig{"sensors": {Partitions: 1}}
	g, stop := startGateway(t, cfg)
	c := connectRaw(t, g.MQTTAddr(), 5, "full")
	// Fill most of the file system with a file we can delete later.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 700<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"device":"d1","seq":1,"pad":"` + strings.Repeat("x", 900) + `"}`)
	acked, refused := 0, 0
	for i := 0; i < 2000 && refused < 3; i++ {
		code, err := c.publish("sensors/d1/r", payload, 1, "", 10*time.Second)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		switch code {
		case 0:
			acked++
		case 0x97:
			refused++
		default:
			t.Fatalf("publish %d: code %#x", i, code)
		}
	}
	if refused == 0 || acked == 0 {
		t.Fatalf("acked %d refused %d: the disk never filled", acked, refused)
	}
	if r := g.Ingest().Counts().Refused[ingest.ReasonDiskFull]; r != float64(refused) {
		t.Fatalf("disk-full refusals counted %v, want %d", r, refused)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// The log may need a moment to notice the space.
	testkit.Eventually(t, 10*time.Second, "a publish acknowledged once space was freed", func() bool {
		code, err := c.publish("sensors/d1/r", payload, 1, "", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return code == 0
	})
	acked++
	stop()
	if recs := readStreamOffline(t, cfg.DataDir, "sensors"); len(recs) < acked {
		t.Fatalf("%d records after restart, but %d were acknowledged", len(recs), acked)
	}
}
