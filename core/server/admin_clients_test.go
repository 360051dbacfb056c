package server

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// runClient runs a non-Go client script, skipping the test when the client
// library is not installed.
func runClient(t *testing.T, probe []string, args ...string) string {
	t.Helper()
	if err := exec.Command(probe[0], probe[1:]...).Run(); err != nil {
		t.Skipf("%v: not available (%v)", probe, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v\nstdout: %s\nstderr: %s", args, err, out.String(), errb.String())
	}
	return out.String()
}

// kafka-python and confluent-kafka-python/librdkafka (AlterConfigs,
// DescribeConfigs) and kafkajs (AlterConfigs, DeleteRecords, ListOffsets)
// change a topic's configs and delete records. Python: Debian's
// python3-kafka and python3-confluent-kafka. kafkajs: found through
// NODE_PATH (or KAFKAJS_DIR, a directory holding node_modules/kafkajs).
func TestNonGoClientsAdmin(t *testing.T) {
	srv, cl := startWithTopics(t, 1, "py", "kjs")
	produceRecords(t, cl, "kjs", 20)
	t.Run("kafka-python", func(t *testing.T) {
		py := "/usr/bin/python3"
		if _, err := os.Stat(py); err != nil {
			py = "python3"
		}
		out := runClient(t, []string{py, "-c", "import kafka"}, py, "testdata/kafkapython_admin.py", srv.Addr(), "py")
		t.Logf("kafka-python: %s", out)
		if l, _ := srv.Topics().Partition("py", 0); l.Config().MaxBatchBytes != 65536 {
			t.Fatalf("max.message.bytes not in force: %+v", l.Config())
		}
	})
	t.Run("librdkafka", func(t *testing.T) {
		py := "/usr/bin/python3"
		if _, err := os.Stat(py); err != nil {
			py = "python3"
		}
		createTopic(t, cl, "rdk", 1, nil)
		out := runClient(t, []string{py, "-c", "import confluent_kafka"}, py, "testdata/confluent_admin.py", srv.Addr(), "rdk")
		t.Logf("confluent-kafka: %s", out)
		if l, _ := srv.Topics().Partition("rdk", 0); l.Config().Cleanup != "compact" {
			t.Fatalf("cleanup.policy not in force: %+v", l.Config())
		}
	})
	t.Run("kafkajs", func(t *testing.T) {
		if d := os.Getenv("KAFKAJS_DIR"); d != "" {
			t.Setenv("NODE_PATH", filepath.Join(d, "node_modules"))
		}
		out := runClient(t, []string{"node", "-e", "require('kafkajs')"}, "node", "testdata/kafkajs_admin.js", srv.Addr(), "kjs")
		t.Logf("kafkajs: %s", out)
		if l, _ := srv.Topics().Partition("kjs", 0); l.StartOffset() != 7 {
			t.Fatalf("log start %d after kafkajs deleteTopicRecords", l.StartOffset())
		}
	})
}
