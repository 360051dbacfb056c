package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tributary-io/tributary/firmware-sim/summary"
	"github.com/tributary-io/tributary/firmware-sim/verify"
	"github.com/tributary-io/tributary/internal/logging"
)

const verifyUsage = `Usage: tributary-sim verify [flags]

Reads a stream and reports, per device, readings received, lost (gaps),
duplicated and out of order. With --summary (written by "run") it knows what
must be there: every reading generated in that run except those the devices
report as dropped or unacknowledged; readings numbered before or after the
run (earlier or later runs continuing with --state), and devices not in the
summary, are counted but not judged. It consumes until all of them were seen and
every partition is read to its end, or until --timeout. Without --summary it
judges each device's readings for gaps between the lowest and highest
sequence number seen, and stops once caught up and idle for --idle.

The stream is read from Kafka brokers (the Tributary core or any Kafka) with
--brokers, or, with --edge-data DIR, straight from the partition logs of a
stopped edge (or core) data directory (DIR/meta.db and DIR/logs).

Exit status: 0 pass; 1 a reading was lost (unless allowed) or duplicated (or
reordered, with --strict-order); 2 usage or read error.

Flags:
`

func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), verifyUsage); fs.PrintDefaults() }
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma separated")
	topic := fs.String("topic", "sensors", "stream (Kafka topic) to check")
	summaryFile := fs.String("summary", "", "run summary written by `tributary-sim run --summary`")
	from := fs.String("from", "start", "where to start in every partition: start, end, an offset, or a time (RFC 3339 or Unix ms)")
	sinceRun := fs.Bool("since-run", false, "start at the summary's start time (minus a minute for clock skew) instead of --from")
	timeout := fs.Duration("timeout", 60*time.Second, "give up waiting for missing readings after this long")
	idle := fs.Duration("idle", 2*time.Second, "without --summary: stop after this long with nothing new")
	edgeData := fs.String("edge-data", "", "read the logs of this stopped edge data directory instead of Kafka")
	allowQoS0Loss := fs.Bool("allow-qos0-loss", false, "do not fail on loss when the run used QoS 0 (loss is still reported)")
	strictOrder := fs.Bool("strict-order", false, "fail on out-of-order readings too")
	all := fs.Bool("all", false, "print every device, not only those with a problem")
	reportFile := fs.String("report", "", "also write the full report as JSON here")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	quiet := fs.Bool("quiet", false, "no progress lines while consuming")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	logger, err := logging.New(stderr, *logLevel, "text")
	if err != nil {
		fmt.Fprintf(stderr, "verify: %v\n", err)
		return 2
	}
	var s *summary.Summary
	if *summaryFile != "" {
		if s, err = summary.Read(*summaryFile); err != nil {
			fmt.Fprintf(stderr, "verify: %v\n", err)
			return 2
		}
	}
	allowLoss := false
	if *allowQoS0Loss {
		if s != nil && s.QoS != 0 {
			fmt.Fprintf(stderr, "verify: --allow-qos0-loss ignored: the run used QoS %d\n", s.QoS)
		} else {
			allowLoss = true
		}
	}

	c := verify.NewChecker(s)
	if *edgeData != "" {
		n, err := verify.ReadLogs(*edgeData, *topic, c, logger)
		if err != nil {
			fmt.Fprintf(stderr, "verify: %v\n", err)
			return 2
		}
		fmt.Fprintf(stdout, "read %d records from %s\n", n, *edgeData)
	} else {
		o := verify.KafkaOptions{Brokers: strings.Split(*brokers, ","), Topic: *topic, Idle: *idle, Logger: logger}
		if !*quiet {
			o.Progress = stderr
		}
		if *sinceRun && s != nil {
			o.StartTime = s.Start.Add(-time.Minute)
		} else if err := parseFrom(*from, &o); err != nil {
			fmt.Fprintf(stderr, "verify: %v\n", err)
			return 2
		}
		cctx, cancel := context.WithTimeout(ctx, *timeout)
		st, err := verify.ConsumeKafka(cctx, o, c)
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "verify: %v\n", err)
			return 2
		}
		fmt.Fprintf(stdout, "consumed %d records from %s", st.Records, *topic)
		if s != nil && !st.Complete {
			fmt.Fprintf(stdout, " (stopped after %s with %d readings missing)", *timeout, c.Missing())
		}
		fmt.Fprintln(stdout)
	}

	r := c.Report()
	r.Print(stdout, *all)
	if *reportFile != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err == nil {
			err = os.WriteFile(*reportFile, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "verify: write report: %v\n", err)
			return 2
		}
	}
	if err := r.Verdict(allowLoss, *strictOrder); err != nil {
		fmt.Fprintln(stdout, "FAIL:", err)
		return 1
	}
	fmt.Fprintln(stdout, "PASS")
	return 0
}

// parseFrom reads --from: start, end, an offset, an RFC 3339 time or Unix ms.
func parseFrom(v string, o *verify.KafkaOptions) error {
	switch v {
	case "", "start", "earliest":
		o.StartOffset = -2
		return nil
	case "end", "latest":
		o.StartOffset = -1
		return nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		o.StartTime = t
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("--from %q: want start, end, an offset, an RFC 3339 time or Unix ms", v)
	}
	// Offsets are small; anything past the year 2001 in ms is a time.
	if n >= 1_000_000_000_000 {
		o.StartTime = time.UnixMilli(n)
		return nil
	}
	o.StartOffset = n
	return nil
}
