package cluster

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
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
