package gateway

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/edge/auth"
	"github.com/tributary-io/tributary/edge/ingest"
)

func TestLoadConfigDefaultsAndOverrides(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "edge.yaml")
	yaml := "mqtt:\n  address: 127.0.0.1:1999\ningest:\n  budget_bytes: 1000\n  budget_policy: drop-oldest\nlog:\n  durability:\n    interval: 50ms\n"
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	def := Defaults()
	if cfg.MQTT.Address != "127.0.0.1:1999" || cfg.MQTT.ReceiveMaximum != def.MQTT.ReceiveMaximum || cfg.HTTP.Address != def.HTTP.Address {
		t.Fatalf("override lost the defaults around it: %+v", cfg.MQTT)
	}
	if cfg.Ingest.BudgetBytes != 1000 || cfg.Ingest.BudgetPolicy != ingest.PolicyDropOldest || cfg.Ingest.MaxPayloadBytes != 64<<10 {
		t.Fatalf("ingest: %+v", cfg.Ingest)
	}
	if cfg.Log.Durability.Interval != 50*time.Millisecond || cfg.Log.SegmentBytes != def.Log.SegmentBytes {
		t.Fatalf("log: %+v", cfg.Log)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(path, []byte("mqtt:\n  adress: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil {
		t.Fatal("a misspelt key was accepted")
	}
	bad := Defaults()
	bad.Ingest.BudgetPolicy = "drop-newest"
	if err := bad.Validate(); err == nil {
		t.Fatal("unknown budget policy accepted")
	}
}

// TestExampleConfig keeps deploy/edge.example.yaml loadable and in step
// with the defaults it documents.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "deploy", "edge.example.yaml")
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(cfg.Auth)
	if err != nil {
		t.Fatalf("example devices: %v", err)
	}
	if err := a.Authenticate("dev-000001", []byte("change-me")); err != nil {
		t.Fatalf("example device password: %v", err)
	}
	// The install guide's check publishes as that device: same password.
	guide, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "install-pi.md"))
	if err != nil || !strings.Contains(string(guide), "-u dev-000001 -P change-me") {
		t.Fatalf("deploy/install-pi.md does not publish with the example's password (%v)", err)
	}
	def := Defaults()
	if cfg.DataDir != def.DataDir || cfg.MQTT.Address != def.MQTT.Address || cfg.HTTP.Address != def.HTTP.Address ||
		cfg.MQTT.ReceiveMaximum != def.MQTT.ReceiveMaximum || cfg.Log.Durability != def.Log.Durability ||
		cfg.Ingest.MaxPayloadBytes != def.Ingest.MaxPayloadBytes {
		t.Fatalf("example drifted from the defaults:\n%+v\n%+v", cfg, def)
	}
	if len(cfg.Aggregations) != 1 || cfg.Aggregations[0].Output != "sensors.1m" || cfg.Ingest.Streams["sensors"].Forward != ingest.ForwardAll {
		t.Fatalf("example aggregation / forward setting: %+v %+v", cfg.Aggregations, cfg.Ingest.Streams)
	}
}

// TestStartsWithDefaults: the daemon starts with no arguments.
func TestStartsWithDefaults(t *testing.T) {
	t.Parallel()
	// The daemon's defaults must form a valid config (it starts with no arguments).
	if err := Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
}
