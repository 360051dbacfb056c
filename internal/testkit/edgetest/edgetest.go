// Package edgetest starts an in-process edge gateway with its bridge to a
// core, for the tests of the roles around the edge (the bridge, the CLI,
// the whole system). It is apart from testkit because it imports the
// gateway and the bridge, whose own tests use testkit.
package edgetest

import (
	"log/slog"
	"testing"
	"time"

	"github.com/tributary-io/tributary/bridge"
	"github.com/tributary-io/tributary/edge/gateway"
	"github.com/tributary-io/tributary/internal/testkit"
)

// Config is an edge for tests: a fresh data directory, MQTT on a free
// loopback port, no HTTP, anonymous devices and a 5 s shutdown.
func Config(t testing.TB) gateway.Config {
	cfg := gateway.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.MQTT.Address = "127.0.0.1:0"
	cfg.HTTP.Address = "-"
	cfg.Auth.AllowAnonymous = true
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

// Start opens a gateway on cfg with a bridge on bcfg attached as
// tributary-edge attaches it (a gateway component, its status served by
// the edge, the gateway's edge id when bcfg has none), and runs the
// gateway until the test ends.
func Start(t testing.TB, cfg gateway.Config, bcfg bridge.Config, logger *slog.Logger) (*gateway.Gateway, *bridge.Bridge) {
	t.Helper()
	g, err := gateway.Open(cfg, logger)
	if err != nil {
		t.Fatalf("open edge: %v", err)
	}
	if bcfg.EdgeID == "" {
		bcfg.EdgeID = g.EdgeID()
	}
	b, err := bridge.New(bcfg, g.Topics(), g.Meta(), g.Registry(), logger)
	if err != nil {
		t.Fatalf("new bridge: %v", err)
	}
	g.Go("bridge", b.Run)
	g.SetStatusSource("bridge", func() any { return b.Status() })
	testkit.Run(t, "edge", g.Run)
	return g, b
}
