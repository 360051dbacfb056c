package cluster

import (
	"bytes"
	"context"
	"log/slog"
)

// logBridge turns the line-oriented logs of raft, serf and memberlist
// ("2026/11/30 06:26:21 [WARN] memberlist: ...") into slog records at the
// matching level, so the broker has one log stream: the library's own
// timestamp and level tag are dropped (slog adds its own), and its name
// ("raft-net", "memberlist") becomes the subsystem attribute.
type logBridge struct {
	logger *slog.Logger
}

func (b logBridge) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		level, subsystem, msg := parseLibraryLine(line)
		if level == slog.LevelError && bytes.Contains(msg, []byte(`error="transport shutdown"`)) {
			// Raft's transport reporting its own shutdown to a connection
			// still open: part of every clean stop, not an error.
			level = slog.LevelInfo
		}
		if subsystem != "" {
			b.logger.Log(context.Background(), level, string(msg), "subsystem", subsystem)
		} else {
			b.logger.Log(context.Background(), level, string(msg))
		}
	}
	return len(p), nil
}

// parseLibraryLine splits "<time> [LEVEL] name: message" (hclog and the
// standard logger both write it); a line without a level tag is INFO and
// kept whole.
func parseLibraryLine(line []byte) (slog.Level, string, []byte) {
	open := bytes.IndexByte(line, '[')
	end := bytes.IndexByte(line, ']')
	if open < 0 || end < open {
		return slog.LevelInfo, "", line
	}
	level := slog.LevelInfo
	switch tag := string(line[open+1 : end]); {
	case len(tag) >= 3 && tag[:3] == "ERR":
		level = slog.LevelError
	case len(tag) >= 4 && tag[:4] == "WARN":
		level = slog.LevelWarn
	case tag == "DEBUG", tag == "TRACE":
		level = slog.LevelDebug
	case tag == "INFO":
	default:
		return slog.LevelInfo, "", line // not a level tag
	}
	msg := bytes.TrimSpace(line[end+1:])
	if colon := bytes.IndexByte(msg, ':'); colon > 0 && bytes.IndexByte(msg[:colon], ' ') < 0 {
		return level, string(msg[:colon]), bytes.TrimSpace(msg[colon+1:])
	}
	return level, "", msg
}
