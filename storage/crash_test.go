package storage

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

const crashChildEnv = "TRIBUTARY_CRASH_CHILD_DIR"

// TestCrashChild is the child process of TestCrashSafety: it appends with
// "always" durability from several goroutines and prints every acknowledged
// batch as "ack <base> <last> <crc>" until it is killed.
func TestCrashChild(t *testing.T) {
	t.Parallel()
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestCrashSafety")
	}
	l, err := OpenLog(dir, LogConfig{SegmentBytes: 64 << 10, Durability: Durability{Mode: SyncAlways}}, testkit.Logger(t))
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(3)
	}
	out := make(chan string, 1024)
	for w := 0; w < 4; w++ {
		go func() {
			for i := 0; ; i++ {
				b := makeBatch(t, 1+i%5, fmt.Sprintf("w%d-%d", w, i), time.Now().UnixMilli())
				res, err := l.Append(context.Background(), b, AppendOptions{LeaderEpoch: -1})
				if err != nil {
					out <- "error " + err.Error()
					return
				}
				h, _ := recordbatch.ParseHeader(b)
				out <- fmt.Sprintf("ack %d %d %d", res.BaseOffset, res.LastOffset, h.CRC)
			}
		}()
	}
	w := bufio.NewWriter(os.Stdout)
	for line := range out {
		w.WriteString(line + "\n")
		w.Flush()
	}
}

func TestCrashSafety(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("crash loop skipped in -short")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	acked := map[int64][2]int64{} // base -> {last, crc}
	const cycles = 20
	for c := 0; c < cycles; c++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 4096)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// Wait for the first ack, then kill at a random moment.
		deadline := time.After(30 * time.Second)
		killAt := time.Duration(20+rng.IntN(200)) * time.Millisecond
		var killTimer <-chan time.Time
		done := false
		for !done {
			select {
			case line, ok := <-lines:
				if !ok {
					done = true
					break
				}
				if strings.HasPrefix(line, "ack ") {
					f := strings.Fields(line)
					base, _ := strconv.ParseInt(f[1], 10, 64)
					last, _ := strconv.ParseInt(f[2], 10, 64)
					crc, _ := strconv.ParseInt(f[3], 10, 64)
					acked[base] = [2]int64{last, crc}
					if killTimer == nil {
						killTimer = time.After(killAt)
					}
				} else if line != "" && !strings.HasPrefix(line, "=== RUN") {
					t.Logf("child: %s", line)
				}
			case <-killTimer:
				cmd.Process.Signal(syscall.SIGKILL)
				killTimer = nil
			case <-deadline:
				cmd.Process.Signal(syscall.SIGKILL)
				t.Fatalf("cycle %d: child made no progress", c)
			}
		}
		cmd.Wait()

		// Reopen as the child would and check every acknowledged batch.
		l, err := OpenLog(dir, LogConfig{SegmentBytes: 64 << 10}, testkit.Logger(t))
		if err != nil {
			t.Fatalf("cycle %d: reopen: %v", c, err)
		}
		if err := l.ReadOnlyReason(); err != nil {
			t.Fatalf("cycle %d: log read-only after a kill: %v", c, err)
		}
		got := map[int64]recordbatch.Header{}
		for _, h := range readAll(t, l) {
			got[h.BaseOffset] = h
		}
		for base, want := range acked {
			h, ok := got[base]
			if !ok {
				t.Fatalf("cycle %d: acknowledged batch at %d missing (log end %d)", c, base, l.NextOffset())
			}
			if h.LastOffset() != want[0] || int64(h.CRC) != want[1] {
				t.Fatalf("cycle %d: batch at %d is [%d..%d] crc %d, acked [..%d] crc %d", c, base, h.BaseOffset, h.LastOffset(), h.CRC, want[0], want[1])
			}
		}
		l.Close()
	}
	if len(acked) < cycles {
		t.Fatalf("only %d acknowledged batches over %d cycles", len(acked), cycles)
	}
	t.Logf("%d cycles, %d acknowledged batches all present", cycles, len(acked))
}
