package cluster

import (
	"bytes"
	"context"
	"log/slog"
)

// logBridge turns the line-oriented logs of raft, serf and memberlist ("... [WARN] memberlist: ...")
// into slog records at the matching level, so the broker has one log stream.
type logBridge struct {
	logger *slog.Logger
}

func (b logBridge) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		level := slog.LevelInfo
		switch {
		case bytes.Contains(line, []byte("[ERR")) && bytes.Contains(line, []byte(`error="transport shutdown"`)):
			// Raft's transport reporting its own shutdown to a connection
			// still open: part of every clean stop, not an error.
			level = slog.LevelInfo
		case bytes.Contains(line, []byte("[ERR")):
			level = slog.LevelError
		case bytes.Contains(line, []byte("[WARN")):
			level = slog.LevelWarn
		case bytes.Contains(line, []byte("[DEBUG")), bytes.Contains(line, []byte("[TRACE")):
			level = slog.LevelDebug
		}
		b.logger.Log(context.Background(), level, string(line))
	}
	return len(p), nil
}
