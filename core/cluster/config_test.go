package cluster

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := Config{BrokerID: 1, DataDir: "/tmp/x", KafkaAddr: "127.0.0.1:9092", RaftAddr: "127.0.0.1:0", SerfAddr: "127.0.0.1:0"}.WithDefaults()
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	if good.MaxVoters != 3 || good.BootstrapExpect != 1 || good.Raft.CommitTimeout == 0 || good.RPCAddr == "" {
		t.Fatalf("defaults not filled: %+v", good)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.BrokerID = -1 }, "negative"},
		{func(c *Config) { c.DataDir = "" }, "data dir"},
		{func(c *Config) { c.RaftAddr = "nope" }, "raft address"},
		{func(c *Config) { c.SerfAddr = "" }, "serf address"},
		{func(c *Config) { c.MaxVoters = 4 }, "max voters"},
	} {
		c := good
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want error containing %q, got %v", tc.want, err)
		}
	}
	if _, err := NewNode(Config{}, nil); err == nil {
		t.Fatal("NewNode accepted an empty config")
	}
	// A node that was never started refuses proposals instead of crashing.
	n, err := NewNode(good, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.CreateTopic(context.Background(), "t", 1, 1, nil); err == nil {
		t.Fatal("proposal on an unstarted node succeeded")
	}
	if n.IsController() {
		t.Fatal("unstarted node claims to be controller")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}

// Host names in the cluster addresses resolve to IPs (compose service
// names need no fixed addresses); IP literals stay.
func TestResolveHost(t *testing.T) {
	t.Parallel()
	got, err := resolveHost("localhost:7946")
	if err != nil || (got != "127.0.0.1:7946" && got != "[::1]:7946") {
		t.Fatalf("localhost: %q, %v", got, err)
	}
	if got, _ := resolveHost("10.1.2.3:7"); got != "10.1.2.3:7" {
		t.Fatalf("IP literal changed: %q", got)
	}
	if _, err := resolveHost("no-such-host.invalid:7"); err == nil || !strings.Contains(err.Error(), "cannot resolve") {
		t.Fatalf("unknown host: %v", err)
	}
}
