package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/render"
)

type produceOpts struct {
	key         string
	headers     []string
	format      string
	contentType string
	partition   int32
	values      []string
}

func produceCmd(g *globals) *cobra.Command {
	var o produceOpts
	c := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce records from stdin (one per line) or --value",
		Long: `produce sends each line of stdin (or each --value) as one record, with
acks=all, and prints where the records landed.

--format json checks each value is JSON and stamps content-type
application/json; --format cbor reads each value as JSON and sends it
encoded as CBOR (content-type application/cbor), the way a CBOR sensor
would; --format text (default) sends the bytes as they are.`,
		Example: `  echo '{"device":"d1","temp":21.5}' | tributary topic produce sensors --format cbor -k d1
  tributary topic produce sensors -k d1 --value hello --value world`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeTopics,
		RunE:              func(cmd *cobra.Command, args []string) error { return produce(cmd, g, args[0], o) },
	}
	f := c.Flags()
	f.StringVarP(&o.key, "key", "k", "", "record key")
	f.StringArrayVarP(&o.headers, "header", "H", nil, "record header key=value (repeatable)")
	f.StringVar(&o.format, "format", "text", "value format: text, json or cbor (JSON input sent as CBOR)")
	f.StringVar(&o.contentType, "content-type", "", "content-type header (default from --format)")
	f.Int32VarP(&o.partition, "partition", "p", -1, "partition (-1: by key)")
	f.StringArrayVar(&o.values, "value", nil, "a value to send instead of reading stdin (repeatable)")
	_ = c.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "json", "cbor"}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

func produce(cmd *cobra.Command, g *globals, topic string, o produceOpts) error {
	ct := o.contentType
	switch o.format {
	case "text":
	case "json":
		if ct == "" {
			ct = render.ContentJSON
		}
	case "cbor":
		if ct == "" {
			ct = render.ContentCBOR
		}
	default:
		return fmt.Errorf("--format %q: want text, json or cbor", o.format)
	}
	var headers []kgo.RecordHeader
	if ct != "" {
		headers = append(headers, kgo.RecordHeader{Key: "content-type", Value: []byte(ct)})
	}
	for _, kv := range o.headers {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--header %q: want key=value", kv)
		}
		headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	opts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks())}
	if o.partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, _, err := g.client(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	type landed struct {
		Partition int32 `json:"partition"`
		First     int64 `json:"first_offset"`
		Last      int64 `json:"last_offset"`
		Records   int   `json:"records"`
	}
	var (
		mu      sync.Mutex
		parts   = map[int32]*landed{}
		errs    []error
		line    int
		pending sync.WaitGroup
	)
	send := func(value []byte) error {
		line++
		switch o.format {
		case "json":
			if !json.Valid(value) {
				return fmt.Errorf("value %d is not JSON: %.60q", line, value)
			}
		case "cbor":
			b, err := render.JSONToCBOR(value)
			if err != nil {
				return fmt.Errorf("value %d: %w", line, err)
			}
			value = b
		}
		r := &kgo.Record{Value: value, Headers: headers, Partition: o.partition}
		if o.key != "" {
			r.Key = []byte(o.key)
		}
		pending.Add(1)
		cl.Produce(cmd.Context(), r, func(r *kgo.Record, err error) {
			defer pending.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if len(errs) < 5 {
					errs = append(errs, fmt.Errorf("produce to %s: %w", topic, err))
				}
				return
			}
			l := parts[r.Partition]
			if l == nil {
				l = &landed{Partition: r.Partition, First: r.Offset}
				parts[r.Partition] = l
			}
			l.First, l.Last = min(l.First, r.Offset), max(l.Last, r.Offset)
			l.Records++
		})
		return nil
	}
	var inErr error
	if len(o.values) > 0 {
		for _, v := range o.values {
			if inErr = send([]byte(v)); inErr != nil {
				break
			}
		}
	} else {
		sc := bufio.NewScanner(g.stdin)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			if len(sc.Bytes()) == 0 {
				continue
			}
			if inErr = send(append([]byte(nil), sc.Bytes()...)); inErr != nil {
				break
			}
		}
		if inErr == nil && sc.Err() != nil {
			inErr = fmt.Errorf("read stdin: %w", sc.Err())
		}
	}
	fctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	ferr := cl.Flush(fctx)
	cancel()
	pending.Wait()
	var out []landed
	t := &table{header: []string{"TOPIC", "PARTITION", "FIRST-OFFSET", "LAST-OFFSET", "RECORDS"}}
	for _, p := range sortedPartitions(parts) {
		l := parts[p]
		out = append(out, *l)
		t.add(topic, l.Partition, l.First, l.Last, l.Records)
	}
	if err := g.print(out, t); err != nil {
		return err
	}
	if ferr != nil && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("flush: %w", ferr))
	}
	return errors.Join(append([]error{inErr}, errs...)...)
}
