package main

import (
	"os/exec"
	"strings"
	"testing"

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
