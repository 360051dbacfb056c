package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tributary-io/tributary/internal/atomicfile"
)

// The high-watermark checkpoint: every replica's high watermark, written
// about once a second and at shutdown to one file in the data directory (as
// Kafka's replication-offset-checkpoint), so a restarted broker starts each
// replica at the last HW it knew instead of at 0. A leader then serves what
// was committed before the restart at once rather than after its followers
// have fetched again, and a consumer's position never falls above the HW.
// The checkpoint may lag (a crash loses the last second); it is a lower
// bound, never beyond what the ISR had.

const hwCheckpointFile = "high-watermarks"

// hwKey names one partition of one incarnation of a topic, so the HW of a
// deleted topic never applies to a new one of the same name.
type hwKey struct {
	topic, id string
	part      int32
}

// readHWCheckpoint loads the checkpoint; a missing file is an empty one.
func readHWCheckpoint(dir string) (map[hwKey]int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, hwCheckpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return map[hwKey]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read high-watermark checkpoint: %w", err)
	}
	out := map[hwKey]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if line == 1 {
			if len(f) != 1 || f[0] != "1" {
				return nil, fmt.Errorf("high-watermark checkpoint: version %q, want 1", sc.Text())
			}
			continue
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("high-watermark checkpoint line %d: %q", line, sc.Text())
		}
		part, err1 := strconv.ParseInt(f[2], 10, 32)
		hw, err2 := strconv.ParseInt(f[3], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("high-watermark checkpoint line %d: %w", line, err)
		}
		id := f[1]
		if id == "-" {
			id = ""
		}
		out[hwKey{f[0], id, int32(part)}] = hw
	}
	return out, nil
}

// writeHWCheckpoint replaces the checkpoint atomically: a crash leaves the
// old file or the new one, never a torn one.
func writeHWCheckpoint(dir string, hws map[hwKey]int64) error {
	var b bytes.Buffer
	b.WriteString("1\n")
	for k, hw := range hws {
		id := k.id
		if id == "" {
			id = "-"
		}
		fmt.Fprintf(&b, "%s %s %d %d\n", k.topic, id, k.part, hw)
	}
	if err := atomicfile.Write(filepath.Join(dir, hwCheckpointFile), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("high-watermark checkpoint: %w", err)
	}
	return nil
}

// checkpointHWs writes every replica's HW when one moved since the last
// write.
func (m *replicaManager) checkpointHWs() {
	m.mu.Lock()
	hws := make(map[hwKey]int64, len(m.replicas))
	for tp, r := range m.replicas {
		r.mu.Lock()
		hws[hwKey{tp.topic, r.topicID, tp.part}] = r.highWatermarkLocked()
		r.mu.Unlock()
	}
	m.mu.Unlock()
	if maps.Equal(hws, m.lastHWs) {
		return
	}
	if err := writeHWCheckpoint(m.s.cfg.DataDir, hws); err != nil {
		m.s.logger.Warn("high-watermark checkpoint not written", "err", err)
		return
	}
	m.lastHWs = hws
}
