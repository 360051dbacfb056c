package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	bridgestatus "github.com/tributary-io/tributary/bridge/status"
	"github.com/tributary-io/tributary/internal/tick"
)

// The edge commands read an edge's read-only JSON API (edge/gateway/api.go);
// -o json|yaml passes its JSON through unchanged. The core does not import
// edge packages, so the types below mirror the gateway's own answers; the
// bridge's answer is bridge/status.Status, the type the bridge itself
// writes, so the two cannot drift.

func edgeCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "edge",
		Short: "Look at an edge gateway through its HTTP API (--edge)",
		Long: `edge reads an edge gateway's read-only JSON API on its HTTP listener
(the -http-addr of tributary-edge, default 127.0.0.1:9645). It works while
the edge runs, whether or not its bridge reaches the core.`,
	}
	c.AddCommand(
		&cobra.Command{
			Use:   "status",
			Short: "Edge id, version, uptime, disk use and ingest counts",
			Args:  cobra.NoArgs,
			RunE:  func(cmd *cobra.Command, _ []string) error { return edgeStatus(cmd, g) },
		},
		&cobra.Command{
			Use:   "streams",
			Short: "Streams and partitions stored on the edge: offsets, records, bytes",
			Args:  cobra.NoArgs,
			RunE:  func(cmd *cobra.Command, _ []string) error { return edgeStreams(cmd, g) },
		},
		&cobra.Command{
			Use:   "backlog",
			Short: "What the bridge has not yet forwarded to the core, per partition",
			Args:  cobra.NoArgs,
			RunE:  func(cmd *cobra.Command, _ []string) error { return edgeBacklog(cmd, g) },
		},
		edgeTailCmd(g),
	)
	return c
}

// edgeGet fetches path from the edge and decodes its JSON into v (if not
// nil), returning the raw body. An error answer becomes an error carrying
// the edge's message.
func (g *globals) edgeGet(ctx context.Context, path string, v any) (json.RawMessage, error) {
	base := strings.TrimRight(g.edge, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("--edge %q: %w", g.edge, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("edge API at %s unreachable (is tributary-edge running with its HTTP listener there?): %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, &edgeError{code: resp.StatusCode, msg: e.Error}
		}
		if resp.StatusCode == http.StatusNotFound {
			return nil, &edgeError{code: resp.StatusCode, msg: "the edge at " + base + " has no " + path + " (an edge older than the admin API?)"}
		}
		return nil, &edgeError{code: resp.StatusCode, msg: strings.TrimSpace(string(body))}
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return nil, fmt.Errorf("%s: unexpected answer: %w", path, err)
		}
	}
	return body, nil
}

type edgeError struct {
	code int
	msg  string
}

func (e *edgeError) Error() string { return fmt.Sprintf("edge: %s (HTTP %d)", e.msg, e.code) }

type edgeStatusResp struct {
	EdgeID        string             `json:"edge_id"`
	Version       string             `json:"version"`
	Commit        string             `json:"commit"`
	UptimeSeconds float64            `json:"uptime_seconds"`
	MQTTAddr      string             `json:"mqtt_addr"`
	LogBytes      int64              `json:"log_bytes"`
	BudgetBytes   int64              `json:"budget_bytes"`
	BudgetPolicy  string             `json:"budget_policy"`
	Streams       int                `json:"streams"`
	Bridge        string             `json:"bridge"`
	Appended      float64            `json:"appended"`
	DeadLetters   float64            `json:"dead_letters"`
	Refused       map[string]float64 `json:"refused"`
	Dropped       float64            `json:"dropped"`
	Duplicates    float64            `json:"duplicates"`
	DamagedRanges int                `json:"damaged_ranges"`
	ReadOnly      []string           `json:"read_only"`
}

func edgeStatus(cmd *cobra.Command, g *globals) error {
	var st edgeStatusResp
	raw, err := g.edgeGet(cmd.Context(), "/api/v1/status", &st)
	if err != nil {
		return err
	}
	refused := 0.0
	var reasons []string
	for r, n := range st.Refused {
		refused += n
		if n > 0 {
			reasons = append(reasons, fmt.Sprintf("%s=%.0f", r, n))
		}
	}
	budget := "none"
	if st.BudgetBytes > 0 {
		budget = fmt.Sprintf("%s of %s (%.0f%%, %s)", bytesStr(st.LogBytes), bytesStr(st.BudgetBytes),
			100*float64(st.LogBytes)/float64(st.BudgetBytes), st.BudgetPolicy)
	}
	t := &table{}
	t.add("EDGE", st.EdgeID)
	t.add("VERSION", strings.TrimSpace(st.Version+" "+shortCommit(st.Commit)))
	t.add("UPTIME", (time.Duration(st.UptimeSeconds) * time.Second).String())
	t.add("MQTT", dash(st.MQTTAddr))
	t.add("LOG", bytesStr(st.LogBytes)+fmt.Sprintf(" in %d streams", st.Streams))
	t.add("BUDGET", budget)
	t.add("BRIDGE", st.Bridge)
	t.add("APPENDED", fmt.Sprintf("%.0f", st.Appended))
	t.add("DEAD-LETTERS", fmt.Sprintf("%.0f", st.DeadLetters))
	t.add("REFUSED", fmt.Sprintf("%.0f", refused)+reasonList(reasons))
	t.add("DROPPED", fmt.Sprintf("%.0f", st.Dropped))
	t.add("DUPLICATES", fmt.Sprintf("%.0f", st.Duplicates))
	t.add("DAMAGED-RANGES", st.DamagedRanges)
	for _, r := range st.ReadOnly {
		t.add("READ-ONLY", r)
	}
	return g.print(raw, t)
}

func reasonList(rs []string) string {
	if len(rs) == 0 {
		return ""
	}
	return " (" + strings.Join(rs, ", ") + ")"
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

type edgeStream struct {
	Stream     string `json:"stream"`
	Records    int64  `json:"records"`
	Bytes      int64  `json:"bytes"`
	Partitions []struct {
		Partition   int32  `json:"partition"`
		StartOffset int64  `json:"start_offset"`
		EndOffset   int64  `json:"end_offset"`
		Records     int64  `json:"records"`
		Bytes       int64  `json:"bytes"`
		Damaged     int    `json:"damaged_ranges"`
		ReadOnly    string `json:"read_only"`
	} `json:"partitions"`
}

func edgeStreams(cmd *cobra.Command, g *globals) error {
	var ss []edgeStream
	raw, err := g.edgeGet(cmd.Context(), "/api/v1/streams", &ss)
	if err != nil {
		return err
	}
	t := &table{header: []string{"STREAM", "PARTITION", "START", "END", "RECORDS", "BYTES", "NOTE"}}
	for _, s := range ss {
		for _, p := range s.Partitions {
			note := p.ReadOnly
			if p.Damaged > 0 {
				note = strings.TrimSpace(fmt.Sprintf("%d damaged ranges %s", p.Damaged, note))
			}
			t.add(s.Stream, p.Partition, p.StartOffset, p.EndOffset, p.Records, bytesStr(p.Bytes), dash(note))
		}
	}
	return g.print(raw, t)
}

func edgeBacklog(cmd *cobra.Command, g *globals) error {
	var bs bridgestatus.Status
	raw, err := g.edgeGet(cmd.Context(), "/api/v1/bridge", &bs)
	var ee *edgeError
	if errors.As(err, &ee) && ee.code == http.StatusNotFound {
		return fmt.Errorf("%s: nothing is forwarded, so there is no backlog; tributary edge streams shows what is stored", ee.msg)
	}
	if err != nil {
		return err
	}
	var total, totalBytes int64
	t := &table{header: []string{"STREAM", "PARTITION", "CORE", "CURSOR", "LOG-END", "BACKLOG", "BACKLOG-BYTES", "LAST-ACK", "WAITING", "DROPPED", "RETRIES", "LAST-ERROR"}}
	for _, p := range bs.Partitions {
		total += p.BacklogRecords
		totalBytes += p.BacklogBytes
		core := fmt.Sprintf("%s/%d", p.CoreTopic, p.CorePartition)
		if p.CorePartition < 0 {
			core = p.CoreTopic + "/-"
		}
		lastAck := "never"
		if !p.LastAck.IsZero() {
			lastAck = time.Since(p.LastAck).Round(time.Second).String() + " ago"
		}
		waiting := "-"
		if p.BacklogRecords > 0 {
			waiting = p.LastAckAge.Round(time.Second).String()
		}
		t.add(p.Stream, p.Partition, core, p.Cursor, p.LogEnd, p.BacklogRecords, bytesStr(p.BacklogBytes),
			lastAck, waiting, p.Dropped, p.Retries, dash(truncate(p.LastError, 60)))
	}
	head := &table{}
	head.add("EDGE", bs.EdgeID)
	head.add("TARGET", bs.Target)
	head.add("BACKLOG", fmt.Sprintf("%d records (%s)", total, bytesStr(totalBytes)))
	return g.print(raw, head, t)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func bytesStr(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

type tailOpts struct {
	n         int
	partition int
	follow    bool
	interval  time.Duration
}

func edgeTailCmd(g *globals) *cobra.Command {
	o := tailOpts{partition: -1}
	c := &cobra.Command{
		Use:   "tail STREAM",
		Short: "Print a stream's newest records on the edge, decoded; -f follows",
		Long: `tail prints the newest records of a stream stored on the edge, one JSON
object per line, values decoded like topic consume does. -f keeps polling
the edge (every --interval) and prints records as they are appended (at
most -n per poll: a burst larger than that between two polls is skipped).`,
		Example: `  tributary edge tail sensors -n 20
  tributary edge tail sensors.dlq -f`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return edgeTail(cmd, g, args[0], o) },
	}
	f := c.Flags()
	f.IntVarP(&o.n, "num", "n", 10, "records to show (at most 1000)")
	f.IntVarP(&o.partition, "partition", "p", -1, "only this partition (default all)")
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing new records until interrupted")
	f.DurationVar(&o.interval, "interval", time.Second, "how often -f polls the edge")
	return c
}

func edgeTail(cmd *cobra.Command, g *globals, stream string, o tailOpts) error {
	if o.n < 1 || o.n > 1000 {
		return fmt.Errorf("-n %d: want 1 to 1000", o.n)
	}
	q := url.Values{"stream": {stream}, "n": {strconv.Itoa(o.n)}}
	if o.partition >= 0 {
		q.Set("partition", strconv.Itoa(o.partition))
	}
	path := "/api/v1/tail?" + q.Encode()
	w := bufio.NewWriter(g.stdout)
	defer w.Flush()
	seen := map[int32]int64{} // partition → next offset not yet printed
	ctx := cmd.Context()
	for {
		var recs []json.RawMessage
		if _, err := g.edgeGet(ctx, path, &recs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, raw := range recs {
			var pos struct {
				Partition int32 `json:"partition"`
				Offset    int64 `json:"offset"`
			}
			if err := json.Unmarshal(raw, &pos); err != nil {
				return fmt.Errorf("tail: unexpected record: %w", err)
			}
			if next, ok := seen[pos.Partition]; ok && pos.Offset < next {
				continue
			}
			seen[pos.Partition] = pos.Offset + 1
			if g.output == "yaml" {
				fmt.Fprintln(w, "---")
				if err := writeYAML(w, raw); err != nil {
					return err
				}
				continue
			}
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				return err
			}
			buf.WriteByte('\n')
			if _, err := w.Write(buf.Bytes()); err != nil {
				return err
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if !o.follow {
			return nil
		}
		if !tick.Sleep(ctx, o.interval) {
			return nil
		}
	}
}
