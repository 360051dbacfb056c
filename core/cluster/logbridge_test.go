package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLogBridgeLevels: hclog and serf lines keep their level through slog,
// lose their own timestamp and level tag, and name their subsystem once;
// raft's transport reporting its own shutdown, which every clean stop logs,
// is not an error.
func TestLogBridgeLevels(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	b := logBridge{logger: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	lines := map[string]string{
		`2026-11-30T06:26:17.528Z [ERROR] raft-net: failed to decode incoming command: error="transport shutdown"`: `level=INFO msg="failed to decode incoming command: error=\"transport shutdown\"" subsystem=raft-net`,
		`2026-11-30T06:26:17.528Z [ERROR] raft-net: failed to decode incoming command: error="unexpected EOF"`:     `level=ERROR msg="failed to decode incoming command: error=\"unexpected EOF\"" subsystem=raft-net`,
		`2026/11/30 06:26:21 [WARN] serf: timeout waiting for leave broadcast`:                                     `level=WARN msg="timeout waiting for leave broadcast" subsystem=serf`,
		`2026/11/30 06:26:16 [INFO] serf: EventMemberLeave: broker-1 127.0.0.1`:                                    `level=INFO msg="EventMemberLeave: broker-1 127.0.0.1" subsystem=serf`,
		`2026/11/30 06:26:16 [DEBUG] memberlist: Stream connection from=127.0.0.1:1234`:                            `level=DEBUG msg="Stream connection from=127.0.0.1:1234" subsystem=memberlist`,
		`no tag at all`: `level=INFO msg="no tag at all"`,
	}
	for line, want := range lines {
		out.Reset()
		if _, err := b.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		if !strings.Contains(got, want) || strings.Count(got, "2026") != 1 {
			t.Errorf("%q logged as %q, want %q and one timestamp", line, got, want)
		}
	}
}
