// Package coretest starts an in-process core broker for the tests of the
// roles around it (the CLI, the edge, the stream processor, the simulator,
// the group coordinator's end-to-end tests). It is apart from testkit
// because it imports core/server, whose own tests use testkit.
package coretest

import (
	"testing"

	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/internal/testkit"
)

// Start runs a core broker with cfg, logging to the test (testkit.Logger),
// and closes it when the test ends; a failed close fails the test, and the
// test may Close it earlier. An empty DataDir is a fresh temporary
// directory; newGroups is server.Start's (nil for the default coordinator).
func Start(t testing.TB, cfg server.Config, newGroups server.NewGroupCoordinator) *server.Server {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	srv, err := server.Start(cfg, testkit.Logger(t), newGroups)
	if err != nil {
		t.Fatalf("start core: %v", err)
	}
	testkit.CloseAtEnd(t, "core", srv)
	return srv
}
