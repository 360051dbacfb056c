package testkit

import (
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond every 10 ms until it holds, failing the test after
// limit with what it was waiting for.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
	}
}

// Ports hands out loopback ports free for TCP and UDP (Serf gossips over
// both) below the ephemeral range, so a restarted process can bind its port
// again; a port is never handed out twice by the same Ports.
type Ports map[int]bool

// Next returns a free port.
func (given Ports) Next(t testing.TB) int {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		if given[port] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		given[port] = true
		return port
	}
	t.Fatal("no free port")
	return 0
}

// BuildBinary builds one of the repository's commands (a path such as
// "edge/cmd/tributary-edge") into the test's temporary directory.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	build := exec.Command("go", "build", "-o", bin, "./"+pkg)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// FlipByte inverts one byte of a file in place, as bit rot does.
func FlipByte(t testing.TB, path string, pos int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xFF
	if _, err := f.WriteAt(b, pos); err != nil {
		t.Fatal(err)
	}
}

var (
	freePortsMu sync.Mutex
	freePorts   = Ports{}
)

// FreePort is Ports.Next over one set shared by the whole test binary, safe
// for parallel tests.
func FreePort(t testing.TB) int {
	t.Helper()
	freePortsMu.Lock()
	defer freePortsMu.Unlock()
	return freePorts.Next(t)
}

// Logger logs at level and above to the test until it ends: goroutines a
// library does not wait for (Raft, Serf) may log after Close, and logging to
// a finished test panics.
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	w := &guardedWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type guardedWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *guardedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
