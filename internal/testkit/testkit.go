package testkit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/tick"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// Eventually polls cond until it holds, failing the test after limit with
// what it was waiting for. It polls every 5 ms at first and backs off to
// every 50 ms, so a quick condition is seen at once and a slow one (a
// request to a cluster still forming) is not asked a hundred times a second.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(limit, cond) {
		t.Fatalf("timed out after %v waiting for %s", limit, what)
	}
}

// Poll is Eventually for a caller that reports the failure itself (with
// what only it knows, such as a child process's output): it says whether
// cond held within limit.
func Poll(limit time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return PollContext(ctx, cond)
}

// PollContext polls cond until it holds (true) or ctx ends (false), for
// harnesses outside tests (the benchmarks) that bound waits by a context.
// It polls every 5 ms at first and backs off to every 50 ms.
func PollContext(ctx context.Context, cond func() bool) bool {
	pause := 5 * time.Millisecond
	for {
		if cond() {
			return true
		}
		if !tick.Sleep(ctx, pause) {
			return cond()
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// Context is a context for a test's requests that ends after limit, or
// when the test ends (after the cleanups the test registers later, so
// they may still use it).
func Context(t testing.TB, limit time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	return ctx
}

// CloseAtEnd closes c (what, in a failure) when the test ends; a close
// that fails fails the test.
func CloseAtEnd(t testing.TB, what string, c io.Closer) {
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close %s: %v", what, err)
		}
	})
}

// Logger is the test logger: records at warning and above go to the test's
// log (shown when it fails, or with -v), everything from debug up with -v.
// Lines logged after the test ended (a goroutine still stopping) are
// dropped instead of panicking the test binary.
func Logger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	if _, fuzz := t.(*testing.F); fuzz {
		// A fuzz target may not call f.Log, and what it builds from f
		// (a server, a coordinator) logs from inside the target.
		if !testing.Verbose() {
			return slog.New(slog.DiscardHandler)
		}
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// Discard is a logger for benchmarks and helpers that have no test to log
// to.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

var (
	portsMu sync.Mutex
	ports   = Ports{}
)

// FreePort returns a loopback port free for TCP and UDP that no other test
// in this process was given, so parallel tests never collide.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := ReservePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FreeAddr is FreePort as a "127.0.0.1:port" address.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}

// ReservePort is FreePort for harnesses outside tests (the benchmarks).
func ReservePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	return ports.reserve()
}

// ReserveAddr is ReservePort as a "127.0.0.1:port" address.
func ReserveAddr() (string, error) {
	p, err := ReservePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

// Ports hands out loopback ports free for TCP and UDP (Serf gossips over
// both) below the ephemeral range, so a restarted process can bind its port
// again; a port is never handed out twice by the same Ports, nor to two
// test processes that run at once (claimPort).
type Ports map[int]bool

// Next returns a free port.
func (given Ports) Next(t testing.TB) int {
	t.Helper()
	p, err := given.reserve()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (given Ports) reserve() (int, error) {
	for range 500 {
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
		if !claimPort(port) {
			continue
		}
		given[port] = true
		return port, nil
	}
	return 0, errors.New("testkit: no free loopback port")
}

// Listening reports whether something accepts TCP connections at addr,
// for a test waiting on a process it started.
func Listening(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
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

// PartitionDirs lists, ascending, the partitions of topic that have a
// directory (<topic>-<partition>) in logsDir; none when logsDir is missing.
func PartitionDirs(t testing.TB, logsDir, topic string) []int32 {
	t.Helper()
	entries, err := os.ReadDir(logsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	out := []int32{}
	for _, e := range entries {
		i := strings.LastIndexByte(e.Name(), '-')
		if !e.IsDir() || i < 0 || e.Name()[:i] != topic {
			continue
		}
		if p, err := strconv.Atoi(e.Name()[i+1:]); err == nil {
			out = append(out, int32(p))
		}
	}
	slices.Sort(out)
	return out
}

// LogReader is the part of a partition log (storage.LogTail) that
// LogRecords reads.
type LogReader interface {
	Read(from int64, maxBytes int, upTo int64) ([]byte, error)
	StartOffset() int64
	NextOffset() int64
}

// LogRecords returns the records of l's data batches from its start to its
// end, failing the test when a read or a batch fails.
func LogRecords(t testing.TB, l LogReader) []recordbatch.Record {
	t.Helper()
	var out []recordbatch.Record
	for from := l.StartOffset(); from < l.NextOffset(); {
		b, err := l.Read(from, 1<<20, -1)
		if err != nil {
			t.Fatalf("read at %d: %v", from, err)
		}
		next, err := recordbatch.RecordsFrom(b, from, func(r recordbatch.Record) { out = append(out, r) })
		if err != nil {
			t.Fatalf("decode at %d: %v", from, err)
		}
		if next == from {
			break // nothing readable below the end yet
		}
		from = next
	}
	return out
}

// GetJSON GETs url, checks that the answer is JSON, decodes its body into v
// and returns the HTTP status, for the roles' health and API endpoints.
func GetJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", url, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode
}

// Get GETs url and returns the status and the body, failing the test when
// it cannot have them.
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// Metrics is the text of the /metrics page on the HTTP listener at addr.
func Metrics(t testing.TB, addr string) string {
	t.Helper()
	_, body := Get(t, "http://"+addr+"/metrics")
	return body
}
