package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// storageVsDD writes the same bytes through the log (1 KiB records in
// batches of 256, interval durability, a final fsync included in the time)
// and through dd with conv=fdatasync, into the same directory.
func storageVsDD(dir string, mib int) ([]row, error) {
	total := int64(mib) << 20
	recs := make([]recordbatch.Record, 256)
	val := make([]byte, 1024)
	for i := range recs {
		recs[i] = recordbatch.Record{Key: []byte("dev-0001"), Value: val, Timestamp: time.Now().UnixMilli()}
	}
	batch, err := recordbatch.Build(recs, recordbatch.NoProducer)
	if err != nil {
		return nil, err
	}
	n := int(total / int64(len(batch)))
	written := int64(n * len(batch))

	logDir := filepath.Join(dir, "log")
	defer os.RemoveAll(logDir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := storage.OpenLog(logDir, storage.LogConfig{SegmentBytes: 1 << 30, Durability: storage.Durability{Mode: storage.SyncInterval, Interval: 100 * time.Millisecond}}, quiet)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := l.Append(context.Background(), batch, storage.AppendOptions{LeaderEpoch: -1}); err != nil {
			l.Close()
			return nil, err
		}
		progress("storage: append", i+1, n)
	}
	if err := l.Sync(); err != nil {
		return nil, err
	}
	logSecs := time.Since(start).Seconds()
	l.Close()

	ddFile := filepath.Join(dir, "dd.out")
	defer os.Remove(ddFile)
	blocks := written >> 20
	start = time.Now()
	out, err := exec.Command("dd", "if=/dev/zero", "of="+ddFile, "bs=1M", "count="+strconv.FormatInt(blocks, 10), "conv=fdatasync").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("dd: %v: %s", err, out)
	}
	ddSecs := time.Since(start).Seconds()
	// Prefer dd's own figure when it prints one.
	if m := regexp.MustCompile(`, ([0-9.]+) s, `).FindSubmatch(out); m != nil {
		if s, err := strconv.ParseFloat(string(m[1]), 64); err == nil && s > 0 {
			ddSecs = s
		}
	}
	logMBs := float64(written) / logSecs / 1e6
	ddMBs := float64(blocks<<20) / ddSecs / 1e6
	return []row{{
		Name:   fmt.Sprintf("storage append, 1 KiB × 256/batch, interval fsync (%d MiB)", written>>20),
		Ours:   fmt.Sprintf("%.0f MB/s (%.0f rec/s)", logMBs, float64(n*256)/logSecs),
		Peer:   fmt.Sprintf("dd conv=fdatasync: %.0f MB/s", ddMBs),
		Ratio:  logMBs / ddMBs,
		Target: "≥ 0.8×",
	}}, nil
}
