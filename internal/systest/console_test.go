package systest

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/core/server"
)

// chromium finds Debian's chromium. Without it the browser tests skip,
// except in CI (CI=true), where .ci/run installs it and they must run.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found, and CI=true: .ci/run installs Debian's chromium package")
	}
	t.Skip("chromium not found: apt-get install -y chromium to run the console's browser test")
	return ""
}

// artifactDir is where screenshots are kept: $TRIBUTARY_ARTIFACTS, or
// bin/artifacts at the repository root.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TRIBUTARY_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "bin", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// headless runs chromium on url with its scripts given 3 s of virtual
// time, and returns its output: the DOM after them with --dump-dom.
func headless(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir(), "--window-size=1280,900", "--virtual-time-budget=3000"}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), url)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, stderr.String())
	}
	return string(out)
}

// checkConsolePage loads a console's page in one headless run that both
// dumps the DOM after the scripts and keeps a screenshot named name under
// the artifacts. On a loaded machine a poll may not have answered within
// the virtual time budget, so it tries up to three times for a chart with
// points. The DOM must hold each of want (it is logged if not). It
// returns the chart's points and the screenshot's path.
func checkConsolePage(t *testing.T, bin, url, name string, want ...string) (points int, shot string) {
	t.Helper()
	shot = filepath.Join(artifactDir(t), name)
	var dom string
	for range 3 {
		dom = headless(t, bin, url, "--dump-dom", "--screenshot="+shot)
		if m := chartPoints.FindStringSubmatch(dom); m != nil {
			if points, _ = strconv.Atoi(m[1] + m[2]); points > 0 {
				break
			}
		}
	}
	for _, w := range want {
		if !strings.Contains(dom, w) {
			t.Errorf("page lacks %s", w)
		}
	}
	if points == 0 {
		t.Errorf("the chart has no points")
	}
	if t.Failed() {
		t.Logf("DOM after scripts:\n%s", dom)
	}
	return points, shot
}

var chartPoints = regexp.MustCompile(`id="chart"[^>]*data-points="(\d+)"|data-points="(\d+)"[^>]*id="chart"`)

// TestCoreConsoleInBrowser: the core's console, loaded in headless
// Chromium against a running core and edge with data, shows the topics,
// the consumer group, the edge, and a chart of a device's readings with
// points in it; a screenshot is kept under bin/artifacts.
func TestCoreConsoleInBrowser(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	sys := Start(t, Options{Console: true})
	sys.Traffic([]string{"sensors", "machines"}, []string{"d1", "d2", "d3"}, 30)
	sys.ConsumeAndCommit("analytics", "sensors", 60)
	sys.Traffic([]string{"sensors"}, []string{"d1"}, 10)

	url := "http://" + sys.Core.ConsoleAddr() + "/"
	var o server.ConsoleOverview
	getJSON(t, url+"api/v1/overview", &o)
	if len(o.Topics) < 2 || o.Health.Status != server.StatusOK || len(o.Groups) != 1 {
		t.Fatalf("overview: %+v", o)
	}
	var r server.ConsoleReadings
	getJSON(t, url+"api/v1/readings?topic=machines&device=d2&n=10", &r)
	if len(r.Readings) != 10 || len(r.Devices) < 3 || r.Readings[0].Format != "json" {
		t.Fatalf("readings: %+v", r)
	}
	var edges []server.ConsoleEdge
	getJSON(t, url+"api/v1/edges", &edges)
	if len(edges) != 1 || edges[0].Error != "" || len(edges[0].Bridge) == 0 {
		t.Fatalf("edges: %+v", edges)
	}
	if resp, err := http.Post(url+"api/v1/overview", "application/json", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST to the read-only console: %v %v", resp, err)
	}

	defer sys.Background("sensors/d4/env", "d4", 20*time.Millisecond)()
	n, shot := checkConsolePage(t, bin, url, "console-core.png", `data-topic="sensors"`, `data-topic="machines"`,
		`data-group="analytics"`, `data-edge="edge-systest"`, `id="line"`, `data-status="ok"`)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v %v", shot, st, err)
	}
	t.Logf("chart of %d readings; screenshot: %s", n, shot)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

// TestEdgeConsoleInBrowser: the edge's console (http.console) shows its
// streams, its bridge's partitions and a chart of a device's readings,
// read from the edge's own API; a screenshot is kept under bin/artifacts.
func TestEdgeConsoleInBrowser(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	sys := Start(t, Options{Console: true})
	sys.Traffic([]string{"sensors", "machines"}, []string{"d1", "d2"}, 25)

	url := "http://" + sys.Edge.HTTPAddr() + "/console/"
	if resp, err := http.Get(url); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %v", url, resp, err)
	}
	defer sys.Background("sensors/d4/env", "d4", 20*time.Millisecond)()
	_, shot := checkConsolePage(t, bin, url, "console-edge.png", `data-stream="sensors"`, `data-stream="machines"`,
		`data-bridge="sensors/`, `id="line"`, `data-status="ok"`)
	t.Logf("screenshot: %s", shot)
}
