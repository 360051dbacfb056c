package server

import (
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

// kcat runs the kcat binary (librdkafka) against the broker.
func kcat(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, stderr, err := kcatResult(stdin, args...)
	if err != nil {
		t.Fatalf("kcat %v: %v\nstderr: %s", args, err, stderr)
	}
	return out
}

func needKcat(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed")
	}
}

// TestKcat drives the broker with librdkafka through kcat: metadata
// listing, producing lines with each compression codec and reading them back.
func TestKcat(t *testing.T) {
	t.Parallel()
	needKcat(t)
	srv := startServer(t, testConfig(t.TempDir()))
	b := srv.Addr()

	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd", "idempotent"} {
		t.Run(codec, func(t *testing.T) {
			topic := "kcat-" + codec
			extra := []string{"-z", codec}
			if codec == "idempotent" {
				// librdkafka's idempotent producer: InitProducerId, sequences.
				extra = []string{"-z", "zstd", "-X", "enable.idempotence=true"}
			}
			var lines []string
			for i := 0; i < 200; i++ {
				lines = append(lines, fmt.Sprintf("%s line %03d", codec, i))
			}
			kcat(t, strings.Join(lines, "\n")+"\n", append([]string{"-b", b, "-P", "-t", topic, "-X", "request.required.acks=all"}, extra...)...)
			out := kcat(t, "", "-b", b, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%p %o %s\n")
			var got []string
			perPartition := map[string]int{}
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.SplitN(l, " ", 3)
				if len(f) != 3 {
					t.Fatalf("bad kcat line %q", l)
				}
				// Offsets within a partition count up from 0.
				if want := fmt.Sprint(perPartition[f[0]]); f[1] != want {
					t.Fatalf("partition %s: offset %s, want %s", f[0], f[1], want)
				}
				perPartition[f[0]]++
				got = append(got, f[2])
			}
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(lines, "\n") {
				t.Fatalf("read back %d lines, want %d; first got %q", len(got), len(lines), got[:min(3, len(got))])
			}
		})
	}

	meta := kcat(t, "", "-b", b, "-L")
	for _, want := range []string{"1 brokers:", "broker 0 at " + b, `topic "kcat-zstd" with 3 partitions`} {
		if !strings.Contains(meta, want) {
			t.Errorf("kcat -L output lacks %q:\n%s", want, meta)
		}
	}
}

// TestKcatGroup reads through a librdkafka consumer group twice: the second
// run resumes from the offsets the first committed.
func TestKcatGroup(t *testing.T) {
	t.Parallel()
	needKcat(t)
	cfg := testConfig(t.TempDir())
	cfg.Groups.InitialRebalanceDelay = 100 * time.Millisecond
	srv := startServer(t, cfg)
	b := srv.Addr()
	read := func() []string {
		out := kcat(t, "", "-b", b, "-G", "kcat-group", "-X", "auto.offset.reset=earliest", "-e", "-q", "grouped")
		lines := strings.Fields(out)
		sort.Strings(lines)
		return lines
	}
	var first, second []string
	for i := 0; i < 30; i++ {
		first = append(first, fmt.Sprintf("a%02d", i))
		second = append(second, fmt.Sprintf("b%02d", i))
	}
	kcat(t, strings.Join(first, "\n")+"\n", "-b", b, "-P", "-t", "grouped")
	if got := read(); strings.Join(got, " ") != strings.Join(first, " ") {
		t.Fatalf("first group read: %v", got)
	}
	kcat(t, strings.Join(second, "\n")+"\n", "-b", b, "-P", "-t", "grouped")
	if got := read(); strings.Join(got, " ") != strings.Join(second, " ") {
		t.Fatalf("second group read (should resume after the first): %v", got)
	}
}
