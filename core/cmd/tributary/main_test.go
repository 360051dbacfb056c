package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/internal/testkit/coretest"
	"github.com/tributary-io/tributary/storage"
)

// startCore starts a single-broker core in-process on a loopback port.
func startCore(t *testing.T) string {
	t.Helper()
	addr, _ := startStoppableCore(t)
	return addr
}

// startStoppableCore also returns a stop function (the core is closed when
// the test ends in any case).
func startStoppableCore(t *testing.T) (string, func()) {
	t.Helper()
	cfg := server.Config{
		DataDir:           t.TempDir(),
		KafkaAddr:         "127.0.0.1:0",
		DefaultPartitions: 3,
		Log:               storage.LogConfig{SegmentBytes: 1 << 20},
		// Consumers in one test join one generation without waiting.
		Groups: server.GroupsConfig{InitialRebalanceDelay: -1},
	}
	srv := coretest.Start(t, cfg, nil)
	// A failed close fails the test when it ends.
	return srv.Addr(), func() { _ = srv.Close() }
}

// cli runs the CLI's root command in-process with stdin and returns its
// stdout, stderr and error.
func cli(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd(strings.NewReader(stdin), &out, &errOut)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// mustCLI runs the CLI and fails the test on an error.
func mustCLI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := cli(t, stdin, args...)
	if err != nil {
		t.Fatalf("tributary %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// jsonOut runs the CLI with -o json and decodes the answer into v.
func jsonOut(t *testing.T, v any, args ...string) {
	t.Helper()
	out := mustCLI(t, "", append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("tributary %s: not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestCLITopics(t *testing.T) {
	addr := startCore(t)
	b := "--brokers=" + addr

	out := mustCLI(t, "", b, "topic", "create", "readings", "-p", "4", "-c", "retention.ms=3600000")
	if !strings.Contains(out, "readings") || !strings.Contains(out, "created") {
		t.Fatalf("create:\n%s", out)
	}
	mustCLI(t, "", b, "topic", "create", "other")
	if _, _, err := cli(t, "", b, "topic", "create", "readings"); err == nil || !strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
		t.Fatalf("creating twice: %v", err)
	}

	out = mustCLI(t, "", b, "topic", "list")
	t.Logf("topic list:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[2], "readings") {
		t.Fatalf("topic list:\n%s", out)
	}
	if f := strings.Fields(lines[2]); f[1] != "4" || f[2] != "1" {
		t.Fatalf("readings row %q: want 4 partitions, 1 replica", lines[2])
	}

	var desc struct {
		Name    string
		Configs []configInfo
		Parts   []partitionInfo `json:"partitions"`
	}
	jsonOut(t, &desc, b, "topic", "describe", "readings")
	if desc.Name != "readings" || len(desc.Parts) != 4 || desc.Parts[0].Leader != 0 || desc.Parts[3].HighWatermark != 0 {
		t.Fatalf("describe: %+v", desc)
	}
	found := false
	for _, c := range desc.Configs {
		if c.Key == "retention.ms" && c.Value == "3600000" {
			found = true
		}
	}
	if !found {
		t.Fatalf("describe configs lack retention.ms=3600000: %+v", desc.Configs)
	}
	t.Logf("topic describe:\n%s", mustCLI(t, "", b, "topic", "describe", "readings"))

	var yamlOut = mustCLI(t, "", b, "topic", "list", "-o", "yaml")
	if !strings.Contains(yamlOut, "- name: other") {
		t.Fatalf("yaml:\n%s", yamlOut)
	}

	if out := mustCLI(t, "", b, "topic", "alter-config", "readings", "--set", "retention.ms=1000"); !strings.Contains(out, "altered") {
		t.Fatalf("alter-config:\n%s", out)
	}
	if out := mustCLI(t, "", b, "topic", "describe", "readings"); !strings.Contains(out, "1000") {
		t.Fatalf("describe after alter-config lacks retention.ms=1000:\n%s", out)
	}
	_, _, err := cli(t, "", b, "topic", "alter-config", "readings", "--set", "retention.ms=soon")
	if err == nil || !strings.Contains(err.Error(), "Invalid value soon for configuration retention.ms") {
		t.Fatalf("alter-config with a bad value: %v", err)
	}
	mustCLI(t, "", b, "topic", "alter-config", "readings", "--delete", "retention.ms")

	mustCLI(t, "", b, "topic", "delete", "other")
	testkit.Eventually(t, 10*time.Second, "other to disappear", func() bool {
		out, _, err := cli(t, "", b, "topic", "list")
		return err == nil && !strings.Contains(out, "other")
	})
	if _, _, err := cli(t, "", b, "topic", "describe", "other"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("describe a deleted topic: %v", err)
	}
	if _, _, err := cli(t, "", b, "topic", "list", "-o", "xml"); err == nil || !strings.Contains(err.Error(), "want table, json or yaml") {
		t.Fatalf("-o xml: %v", err)
	}
}

func TestCLIProduceConsume(t *testing.T) {
	addr := startCore(t)
	b := "--brokers=" + addr
	mustCLI(t, "", b, "topic", "create", "sensors", "-p", "1")

	in := `{"device":"d1","seq":0,"temp":21.5}
{"device":"d1","seq":1,"temp":21.75}
`
	out := mustCLI(t, in, b, "topic", "produce", "sensors", "--format", "cbor", "-k", "d1")
	if !strings.Contains(out, "sensors") || !strings.Contains(out, " 2") {
		t.Fatalf("produce:\n%s", out)
	}
	mustCLI(t, "", b, "topic", "produce", "sensors", "-k", "d2", "--value", "plain text", "-H", "site=lab")
	// SenML as a sensor sends it: base name and time applied per record.
	mustCLI(t, "", b, "topic", "produce", "sensors", "--content-type", "application/senml+json",
		"--value", `[{"bn":"urn:dev:d3:","bt":1700000000,"n":"temp","u":"Cel","v":20.5},{"n":"hum","u":"%RH","v":41,"t":1}]`)

	out = mustCLI(t, "", b, "topic", "consume", "sensors", "-n", "4")
	t.Logf("consume:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 records, got:\n%s", out)
	}
	var recs []shownRecord
	for _, l := range lines {
		var r shownRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	if r := recs[0]; r.Format != "cbor" || r.Key != "d1" || r.Headers["content-type"] != "application/cbor" || r.Offset != 0 {
		t.Fatalf("record 0: %+v", r)
	}
	if v, ok := recs[1].Value.(map[string]any); !ok || v["temp"] != 21.75 || v["device"] != "d1" || v["seq"] != 1.0 {
		t.Fatalf("record 1 value not decoded from CBOR: %#v", recs[1].Value)
	}
	if r := recs[2]; r.Format != "text" || r.Value != "plain text" || r.Headers["site"] != "lab" {
		t.Fatalf("record 2: %+v", r)
	}
	pack, ok := recs[3].Value.([]any)
	if !ok || recs[3].Format != "senml" || len(pack) != 2 {
		t.Fatalf("record 3: %+v", recs[3])
	}
	if hum := pack[1].(map[string]any); hum["n"] != "urn:dev:d3:hum" || hum["t"] != 1700000001.0 || hum["v"] != 41.0 {
		t.Fatalf("senml record not resolved: %#v", hum)
	}

	// --raw gives the bytes back; --from picks the start; -e stops at the end.
	out = mustCLI(t, "", b, "topic", "consume", "sensors", "--from", "2", "-e", "--raw")
	if !strings.HasPrefix(out, "plain text\n[{") {
		t.Fatalf("raw from 2:\n%q", out)
	}
	out = mustCLI(t, "", b, "topic", "consume", "sensors", "--from", "-1", "-e")
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"offset":3`) {
		t.Fatalf("from -1:\n%s", out)
	}
	out = mustCLI(t, "", b, "topic", "consume", "sensors", "--from", "1h", "-e")
	if strings.Count(out, "\n") != 4 {
		t.Fatalf("from 1h ago:\n%s", out)
	}
	out = mustCLI(t, "", b, "topic", "consume", "sensors", "--from", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "-e")
	if out != "" {
		t.Fatalf("from an hour ahead:\n%s", out)
	}
	out = mustCLI(t, "", b, "topic", "consume", "sensors", "-n", "1", "-o", "yaml")
	if !strings.HasPrefix(out, "---\n") || !strings.Contains(out, "temp: 21.5") {
		t.Fatalf("yaml consume:\n%s", out)
	}
	if _, _, err := cli(t, "", b, "topic", "consume", "sensors", "--from", "yesterday"); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("bad --from: %v", err)
	}

	// A consume with --group commits what it printed.
	mustCLI(t, "", b, "topic", "consume", "sensors", "-n", "3", "--group", "people")
	var lag []lagRow
	jsonOut(t, &lag, b, "group", "lag", "people")
	if len(lag) != 1 || lag[0].Committed != 3 || lag[0].Lag != 1 {
		t.Fatalf("lag after a group consume of 3 of 4: %+v", lag)
	}
}

// A franz-go group consumer commits and stops: lag shows what is left,
// reset-offsets plans (dry run) then moves the offsets, and refuses while
// the group has a member.
func TestCLIGroupsLagReset(t *testing.T) {
	addr := startCore(t)
	b := "--brokers=" + addr
	mustCLI(t, "", b, "topic", "create", "events", "-p", "2")
	var in strings.Builder
	for i := range 100 {
		in.WriteString(`{"n":` + string(rune('0'+i%10)) + "}\n")
	}
	mustCLI(t, in.String(), b, "topic", "produce", "events", "--format", "json")

	consumer := func() *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("analytics"), kgo.ConsumeTopics("events"),
			kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	cl := consumer()
	got := 0
	ctx := testkit.Context(t, 20*time.Second)
	for got < 60 && ctx.Err() == nil {
		fs := cl.PollRecords(ctx, 60-got)
		fs.EachRecord(func(*kgo.Record) { got++ })
	}
	if got < 60 {
		t.Fatalf("consumed %d of 60", got)
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}

	// While the member is alive, describe names it and reset is refused.
	var d describedGroup
	jsonOut(t, &d, b, "group", "describe", "analytics")
	if d.State != "Stable" || len(d.Members) != 1 || len(d.Members[0].Assigned) != 2 {
		t.Fatalf("describe with a member: %+v", d)
	}
	if _, _, err := cli(t, "", b, "group", "reset-offsets", "analytics", "--to-earliest"); err == nil || !strings.Contains(err.Error(), "active members") {
		t.Fatalf("reset with a member: %v", err)
	}
	cl.Close() // leaves the group

	out := mustCLI(t, "", b, "group", "list")
	if !strings.Contains(out, "analytics") || !strings.Contains(out, "Empty") {
		t.Fatalf("group list:\n%s", out)
	}
	out = mustCLI(t, "", b, "group", "lag", "analytics")
	t.Logf("group lag:\n%s", out)
	var lag []lagRow
	jsonOut(t, &lag, b, "group", "lag", "analytics")
	total := int64(0)
	for _, r := range lag {
		total += r.Lag
	}
	if len(lag) != 2 || total != 40 {
		t.Fatalf("lag after consuming 60 of 100: %+v", lag)
	}

	// Dry run: a plan, nothing committed.
	out, errOut, err := cli(t, "", b, "group", "reset-offsets", "analytics", "--to-earliest", "--dry-run")
	if err != nil || !strings.Contains(errOut, "dry run") || !strings.Contains(out, "CURRENT") {
		t.Fatalf("dry run: %v\n%s\n%s", err, out, errOut)
	}
	t.Logf("reset-offsets --dry-run:\n%s", out)
	jsonOut(t, &lag, b, "group", "lag", "analytics")
	if lag[0].Lag+lag[1].Lag != 40 {
		t.Fatalf("a dry run changed the offsets: %+v", lag)
	}

	mustCLI(t, "", b, "group", "reset-offsets", "analytics", "--to-earliest")
	jsonOut(t, &lag, b, "group", "lag", "analytics")
	if lag[0].Committed != 0 || lag[1].Committed != 0 || lag[0].Lag+lag[1].Lag != 100 {
		t.Fatalf("after --to-earliest: %+v", lag)
	}
	mustCLI(t, "", b, "group", "reset-offsets", "analytics", "--topic", "events", "--to-offset", "10")
	jsonOut(t, &lag, b, "group", "lag", "analytics")
	// franz-go's sticky partitioner put all 100 on one partition: the
	// other one's offset is clamped to its end.
	if lag[0].Committed+lag[1].Committed != 10 {
		t.Fatalf("after --to-offset 10: %+v", lag)
	}
	mustCLI(t, "", b, "group", "reset-offsets", "analytics", "--to-datetime", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	jsonOut(t, &lag, b, "group", "lag", "analytics")
	if lag[0].Lag+lag[1].Lag != 0 {
		t.Fatalf("after --to-datetime in the future (the end): %+v", lag)
	}
	if _, _, err := cli(t, "", b, "group", "reset-offsets", "analytics"); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Fatalf("reset without a target: %v", err)
	}

	// A consumer that starts again picks up from the reset offsets.
	mustCLI(t, "", b, "group", "reset-offsets", "analytics", "--to-latest", "--topic", "events")
	mustCLI(t, "", b, "group", "reset-offsets", "analytics", "--to-offset", "45")
	cl = consumer()
	defer cl.Close()
	got = 0
	for got < 10 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if r.Offset < 45 {
				t.Errorf("record at %d/%d below the reset offset 45", r.Partition, r.Offset)
			}
			got++
		})
	}
}

func TestCLICluster(t *testing.T) {
	addr := startCore(t)
	b := "--brokers=" + addr
	out := mustCLI(t, "", b, "cluster", "info")
	t.Logf("cluster info:\n%s", out)
	if !strings.Contains(out, "127.0.0.1") || !strings.Contains(out, "CONTROLLER") {
		t.Fatalf("cluster info:\n%s", out)
	}
	mustCLI(t, "", b, "topic", "create", "x", "-p", "2")
	var h struct {
		Healthy    bool
		Brokers    []int32
		Partitions int
	}
	jsonOut(t, &h, b, "cluster", "health")
	if !h.Healthy || len(h.Brokers) != 1 || h.Partitions < 2 {
		t.Fatalf("health: %+v", h)
	}
	if _, _, err := cli(t, "", "--brokers=127.0.0.1:1", "--timeout=1s", "cluster", "health"); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("health of nothing: %v", err)
	}
	out = mustCLI(t, "", "version")
	if !strings.Contains(out, "tributary") {
		t.Fatalf("version: %s", out)
	}
}
