package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

// The built binary: exit status, stderr wording, completion and a command
// against a real core.
func TestCLIBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := testkit.BuildBinary(t, "core/cmd/tributary")
	addr := startCore(t)
	run := func(args ...string) (string, string, error) {
		var out, errOut strings.Builder
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}
	if out, _, err := run("version"); err != nil || !strings.HasPrefix(out, "tributary") {
		t.Fatalf("version: %v %q", err, out)
	}
	if out, errOut, err := run("--brokers", addr, "topic", "create", "bin-topic", "-p", "2"); err != nil {
		t.Fatalf("create: %v\n%s%s", err, out, errOut)
	}
	out, _, err := run("--brokers", addr, "topic", "list", "-o", "json")
	if err != nil || !strings.Contains(out, `"name": "bin-topic"`) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	_, errOut, err := run("--brokers", addr, "topic", "describe", "missing")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.HasPrefix(errOut, "tributary: topic \"missing\" does not exist") {
		t.Fatalf("describe a missing topic: %v %q", err, errOut)
	}
	if out, _, err := run("completion", "bash"); err != nil || !strings.Contains(out, "__start_tributary") {
		t.Fatalf("bash completion: %v", err)
	}
}

// The real tributary-edge binary wires its bridge into the API: with no
// core listening, a published reading shows as backlog.
func TestCLIEdgeBinaryBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the edge binary")
	}
	bin := testkit.BuildBinary(t, "edge/cmd/tributary-edge")
	ports := testkit.Ports{}
	mqttAddr := fmt.Sprintf("127.0.0.1:%d", ports.Next(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ports.Next(t))
	noCore := fmt.Sprintf("127.0.0.1:%d", ports.Next(t))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(cfg, []byte("bridge:\n  brokers: ["+noCore+"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	edge := exec.Command(bin, "-config", cfg, "-data-dir", filepath.Join(dir, "data"), "-mqtt-addr", mqttAddr,
		"-http-addr", httpAddr, "-allow-anonymous")
	edge.Stdout, edge.Stderr = &logs, &logs
	if err := edge.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = edge.Process.Signal(syscall.SIGTERM)
		if err := edge.Wait(); err != nil {
			t.Errorf("edge exit: %v\n%s", err, logs.String())
		}
	})
	e := "--edge=" + httpAddr
	testkit.Eventually(t, 20*time.Second, "the edge API to answer", func() bool {
		_, _, err := cli(t, "", e, "edge", "status")
		return err == nil
	})
	publishReadings(t, mqttAddr, 0, 1)
	testkit.Eventually(t, 20*time.Second, "a backlog of 1", func() bool {
		var bl backlogJSON
		out, _, err := cli(t, "", e, "edge", "backlog", "-o", "json")
		return err == nil && json.Unmarshal([]byte(out), &bl) == nil && bl.total() == 1
	})
	var st edgeStatusResp
	jsonOut(t, &st, e, "edge", "status")
	if st.Bridge != "on" || st.Appended != 1 {
		t.Fatalf("status: %+v", st)
	}
}
