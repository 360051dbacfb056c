package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLogBridgeLevels: hclog and serf lines keep their level through slog,
// except raft's transport reporting its own shutdown, which every clean stop
// logs and which is not an error.
func TestLogBridgeLevels(t *testing.T) {
	var out bytes.Buffer
	b := logBridge{logger: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	lines := map[string]string{
		`2026-11-30T06:26:17.528Z [ERROR] raft-net: failed to decode incoming command: error="transport shutdown"`: "INFO",
		`2026-11-30T06:26:17.528Z [ERROR] raft-net: failed to decode incoming command: error="unexpected EOF"`:     "ERROR",
		`2026/11/30 06:26:21 [WARN] serf: timeout waiting for leave broadcast`:                                     "WARN",
		`2026/11/30 06:26:16 [INFO] serf: EventMemberLeave: broker-1 127.0.0.1`:                                    "INFO",
		`2026/11/30 06:26:16 [DEBUG] memberlist: Stream connection from=127.0.0.1:1234`:                            "DEBUG",
	}
	for line, want := range lines {
		out.Reset()
		if _, err := b.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); !strings.Contains(got, "level="+want+" ") {
			t.Errorf("%q logged as %q, want level %s", line, got, want)
		}
	}
}
