package gateway

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tributary-io/tributary/edge/payload"
	"github.com/tributary-io/tributary/internal/testkit"
)

// TestCrashAckedReadingsSurvive builds the real tributary-edge binary, has
// several clients publish QoS 1 (and some QoS 2) readings, SIGKILLs the daemon
// at random moments, restarts it, and finally checks that every reading that
// was PUBACKed is in the log exactly once (and nothing is there twice). Like
// a real device, each client re-sends its unacknowledged readings (same seq
// and ts) after reconnecting — half the clients keep 8 QoS 1 publishes in
// flight — and when the killed daemon had stored them before the PUBACK
// left, only the re-send window keeps them from being stored twice.
func TestCrashAckedReadingsSurvive(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and kills the daemon repeatedly")
	}
	dir := t.TempDir()
	bin := testkit.BuildBinary(t, "edge/cmd/tributary-edge")
	addr := testkit.FreeAddr(t)
	dataDir := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "edge.yaml")
	cfg := fmt.Sprintf("data_dir: %s\nlog_level: warn\nmqtt:\n  address: %s\nhttp:\n  address: \"-\"\nauth:\n  allow_anonymous: true\n", dataDir, addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "edge.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "-config", cfgPath)
		cmd.Stderr = logFile
		if err := cmd.Start(); err != nil {
			t.Fatalf("start: %v", err)
		}
		listening := testkit.Poll(15*time.Second, func() bool {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		if !listening {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("daemon did not listen within 15s; log in %s", logFile.Name())
		}
		return cmd
	}

	const (
		clients   = 8
		minCycles = 20
	)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var (
		mu     sync.Mutex
		acked  = map[string][]uint64{}
		next   = map[string]uint64{}
		sent   = map[string]uint64{} // one past the highest seq ever sent
		resent int
	)
	began := time.Now()
	cycles := 0
	for ; cycles < minCycles || (cycles < 40 && time.Since(began) < 20*time.Second); cycles++ {
		cmd := start()
		var wg sync.WaitGroup
		for c := 0; c < clients; c++ {
			dev := fmt.Sprintf("crash-%d", c)
			qos := byte(1)
			if c%4 == 3 {
				qos = 2 // acknowledged = PUBCOMP
			}
			pipelined := c%4 < 2 // up to 8 QoS 1 publishes in flight (deferred acks)
			wg.Add(1)
			go func() {
				defer wg.Done()
				rc, code, err := dialRaw(t, addr, 4, fmt.Sprintf("%s-%d", dev, cycles), "", "")
				if err != nil || code != 0 {
					return // killed before we connected
				}
				mu.Lock()
				seq := next[dev]
				resent += int(sent[dev] - seq)
				mu.Unlock()
				if pipelined {
					seq = pipelineUntilKilled(rc, dev, seq, func(from, to uint64) {
						mu.Lock()
						for s := from; s < to; s++ {
							acked[dev] = append(acked[dev], s)
						}
						mu.Unlock()
					}, func(to uint64) {
						mu.Lock()
						sent[dev] = max(sent[dev], to)
						mu.Unlock()
					})
					rc.conn.Close()
					mu.Lock()
					next[dev] = seq // the unacknowledged ones are re-sent on the next connect
					mu.Unlock()
					return
				}
				for ; ; seq++ {
					mu.Lock()
					sent[dev] = max(sent[dev], seq+1)
					mu.Unlock()
					// Device time advances per reading; a re-send repeats it.
					code, err := rc.publish("sensors/"+dev+"/reading", jsonReading(dev, seq, 1_700_000_000_000+int64(seq)*100), qos, "", 5*time.Second)
					if err != nil || code != 0 {
						break
					}
					mu.Lock()
					acked[dev] = append(acked[dev], seq)
					mu.Unlock()
				}
				rc.conn.Close()
				mu.Lock()
				next[dev] = seq // unacknowledged (maybe stored): re-sent on the next connect
				mu.Unlock()
			}()
		}
		time.Sleep(time.Duration(20+rng.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill: %v", err)
		}
		_ = cmd.Wait()
		wg.Wait()
	}

	// A last start proves recovery once more, then a graceful stop.
	cmd := start()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("daemon did not stop on SIGTERM")
	}

	stored := map[string]map[uint64]int{}
	for _, r := range readStreamOffline(t, dataDir, "sensors") {
		rd, err := payload.Decode(payload.ContentJSON, r.Value)
		if err != nil {
			t.Fatalf("stored record does not decode: %v", err)
		}
		if stored[rd.Device] == nil {
			stored[rd.Device] = map[uint64]int{}
		}
		stored[rd.Device][rd.Seq]++
	}
	total := 0
	for dev, seqs := range acked {
		total += len(seqs)
		for _, s := range seqs {
			if n := stored[dev][s]; n != 1 {
				t.Errorf("%s seq %d was acknowledged but is stored %d times", dev, s, n)
			}
		}
	}
	for dev, m := range stored {
		for s, n := range m {
			if n > 1 {
				t.Errorf("%s seq %d stored %d times", dev, s, n)
			}
		}
	}
	if total == 0 {
		t.Fatal("no publish was acknowledged in any cycle")
	}
	t.Logf("%d kill cycles in %s, %d re-sends after reconnect, %d acknowledged readings all stored exactly once",
		cycles, time.Since(began).Round(time.Millisecond), resent, total)
}

// pipelineUntilKilled publishes QoS 1 readings from seq on in rounds of 8
// written at once, reading their PUBACKs (which must come in order), until
// the connection dies. Readings are a function of seq, so a round that
// starts below what was sent before re-sends them exactly. It returns the
// first seq not acknowledged.
func pipelineUntilKilled(rc *rawClient, dev string, seq uint64, acked func(from, to uint64), sent func(to uint64)) uint64 {
	const window = 8
	for {
		var buf bytes.Buffer
		for k := uint64(0); k < window; k++ {
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 4,
				TopicName: "sensors/" + dev + "/reading", Payload: jsonReading(dev, seq+k, 1_700_000_000_000+int64(seq+k)*100), PacketID: uint16(k + 1)}
			if err := pk.PublishEncode(&buf); err != nil {
				return seq
			}
		}
		sent(seq + window)
		if _, err := rc.conn.Write(buf.Bytes()); err != nil {
			return seq
		}
		n := uint64(0)
		for ; n < window; n++ {
			fh, body, err := rc.read(5 * time.Second)
			if err != nil || fh.Type != packets.Puback || len(body) < 2 || binary.BigEndian.Uint16(body) != uint16(n+1) ||
				(len(body) > 2 && body[2] != 0) {
				break
			}
		}
		acked(seq, seq+n)
		seq += n
		if n < window {
			return seq
		}
	}
}
