package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func topicCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "topic", Short: "List, describe, create, delete, consume and produce topics"}
	var internal bool
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List topics with their partition and replica counts",
		Args:    cobra.NoArgs,
		RunE: g.inSession(func(ctx context.Context, adm *kadm.Client, _ []string) error {
			return g.topicList(ctx, adm, internal)
		}),
	}
	list.Flags().BoolVarP(&internal, "internal", "i", false, "include internal topics (__consumer_offsets)")

	var (
		partitions int32
		replicas   int16
		configs    []string
	)
	create := &cobra.Command{
		Use:   "create TOPIC...",
		Short: "Create topics",
		Example: `  tributary topic create sensors -p 6 -r 3
  tributary topic create state -c cleanup.policy=compact -c retention.ms=-1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return topicCreate(cmd, g, args, partitions, replicas, configs)
		},
	}
	create.Flags().Int32VarP(&partitions, "partitions", "p", -1, "partitions (-1: the broker's default)")
	create.Flags().Int16VarP(&replicas, "replicas", "r", -1, "replication factor (-1: the broker's default)")
	create.Flags().StringArrayVarP(&configs, "config", "c", nil, "topic config key=value (repeatable)")

	var (
		set   []string
		unset []string
	)
	alter := &cobra.Command{
		Use:   "alter-config TOPIC...",
		Short: "Set or remove topic configs (incremental)",
		Example: `  tributary topic alter-config sensors --set retention.ms=86400000
  tributary topic alter-config sensors --delete retention.bytes`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return topicAlterConfig(cmd, g, args, set, unset) },
	}
	alter.Flags().StringArrayVarP(&set, "set", "s", nil, "config key=value to set (repeatable)")
	alter.Flags().StringArrayVarP(&unset, "delete", "d", nil, "config key to return to its default (repeatable)")

	c.AddCommand(list,
		&cobra.Command{
			Use:               "describe TOPIC",
			Aliases:           []string{"info"},
			Short:             "Show a topic's configs and partitions (leader, replicas, ISR, offsets)",
			Args:              cobra.ExactArgs(1),
			ValidArgsFunction: g.completeTopics,
			RunE:              g.inSession(g.topicDescribe),
		},
		create,
		&cobra.Command{
			Use:               "delete TOPIC...",
			Short:             "Delete topics",
			Args:              cobra.MinimumNArgs(1),
			ValidArgsFunction: g.completeTopics,
			RunE:              g.inSession(g.topicDelete),
		},
		alter,
		consumeCmd(g),
		produceCmd(g),
	)
	return c
}

// completeTopics offers the cluster's topic names for shell completion.
func (g *globals) completeTopics(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	return g.complete(cmd, func(ctx context.Context, adm *kadm.Client) ([]string, error) {
		td, err := adm.ListTopics(ctx)
		return td.Names(), err
	})
}

// complete answers shell completion with the names list finds, or with
// none when the cluster cannot be asked.
func (g *globals) complete(cmd *cobra.Command, list func(context.Context, *kadm.Client) ([]string, error)) ([]string, cobra.ShellCompDirective) {
	ctx, adm, done, err := g.session(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer done()
	names, err := list(ctx, adm)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

type topicSummary struct {
	Name       string `json:"name"`
	Partitions int    `json:"partitions"`
	Replicas   int    `json:"replicas"`
	Internal   bool   `json:"internal,omitempty"`
	Error      string `json:"error,omitempty"`
}

func (g *globals) topicList(ctx context.Context, adm *kadm.Client, internal bool) error {
	list := adm.ListTopics
	if internal {
		list = adm.ListTopicsWithInternal
	}
	td, err := list(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	out := []topicSummary{}
	t := &table{header: []string{"NAME", "PARTITIONS", "REPLICAS"}}
	for _, name := range td.Names() {
		d := td[name]
		s := topicSummary{Name: name, Partitions: len(d.Partitions), Replicas: d.Partitions.NumReplicas(), Internal: d.IsInternal}
		if d.Err != nil {
			s.Error = d.Err.Error()
		}
		out = append(out, s)
		t.add(s.Name, s.Partitions, s.Replicas)
	}
	return g.print(out, t)
}

type partitionInfo struct {
	Partition     int32   `json:"partition"`
	Leader        int32   `json:"leader"`
	LeaderEpoch   int32   `json:"leader_epoch"`
	Replicas      []int32 `json:"replicas"`
	ISR           []int32 `json:"isr"`
	Offline       []int32 `json:"offline_replicas,omitempty"`
	LogStart      int64   `json:"log_start_offset"`
	HighWatermark int64   `json:"high_watermark"`
	Error         string  `json:"error,omitempty"`
}

type configInfo struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

func (g *globals) topicDescribe(ctx context.Context, adm *kadm.Client, args []string) error {
	topic := args[0]
	m, err := adm.Metadata(ctx, topic)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	td, ok := m.Topics[topic]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("topic %q does not exist (tributary topic list shows the topics)", topic)
	}
	if td.Err != nil {
		return fmt.Errorf("topic %q: %w", topic, td.Err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	out := struct {
		Name       string          `json:"name"`
		ID         string          `json:"id"`
		Internal   bool            `json:"internal"`
		Configs    []configInfo    `json:"configs"`
		Partitions []partitionInfo `json:"partitions"`
	}{Name: topic, ID: td.ID.String(), Internal: td.IsInternal}

	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err == nil && len(rcs) == 1 && rcs[0].Err == nil {
		for _, c := range rcs[0].Configs {
			v := c.MaybeValue()
			if c.Sensitive {
				v = "(sensitive)"
			}
			out.Configs = append(out.Configs, configInfo{c.Key, v, configSource(c.Source)})
		}
		sort.Slice(out.Configs, func(i, j int) bool { return out.Configs[i].Key < out.Configs[j].Key })
	}
	for _, p := range td.Partitions.Sorted() {
		pi := partitionInfo{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
			Replicas: p.Replicas, ISR: p.ISR, Offline: p.OfflineReplicas, LogStart: -1, HighWatermark: -1}
		if p.Err != nil {
			pi.Error = p.Err.Error()
		}
		if o, ok := starts.Lookup(topic, p.Partition); ok && o.Err == nil {
			pi.LogStart = o.Offset
		}
		if o, ok := ends.Lookup(topic, p.Partition); ok && o.Err == nil {
			pi.HighWatermark = o.Offset
		}
		out.Partitions = append(out.Partitions, pi)
	}

	head := &table{}
	head.add("NAME", topic)
	head.add("PARTITIONS", len(out.Partitions))
	head.add("REPLICAS", td.Partitions.NumReplicas())
	tables := []*table{head}
	if len(out.Configs) > 0 {
		ct := &table{header: []string{"CONFIG", "VALUE", "SOURCE"}}
		for _, c := range out.Configs {
			ct.add(c.Key, c.Value, c.Source)
		}
		tables = append(tables, ct)
	}
	pt := &table{header: []string{"PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "HIGH-WATERMARK", "RECORDS", "ERROR"}}
	for _, p := range out.Partitions {
		records := "-"
		if p.LogStart >= 0 && p.HighWatermark >= 0 {
			records = fmt.Sprint(p.HighWatermark - p.LogStart)
		}
		pt.add(p.Partition, p.Leader, p.LeaderEpoch, ids(p.Replicas), ids(p.ISR), p.LogStart, p.HighWatermark, records, dash(p.Error))
	}
	tables = append(tables, pt)
	return g.print(out, tables...)
}

func configSource(s kmsg.ConfigSource) string {
	switch s {
	case kmsg.ConfigSourceDynamicTopicConfig:
		return "topic"
	case kmsg.ConfigSourceDefaultConfig:
		return "default"
	case kmsg.ConfigSourceStaticBrokerConfig, kmsg.ConfigSourceDynamicBrokerConfig, kmsg.ConfigSourceDynamicDefaultBrokerConfig:
		return "broker"
	}
	return strings.ToLower(s.String())
}

func topicCreate(cmd *cobra.Command, g *globals, topics []string, partitions int32, replicas int16, kvs []string) error {
	configs := map[string]*string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--config %q: want key=value", kv)
		}
		configs[k] = &v
	}
	ctx, adm, done, err := g.session(cmd)
	if err != nil {
		return err
	}
	defer done()
	resps, err := adm.CreateTopics(ctx, partitions, replicas, configs, topics...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	type created struct {
		Name       string `json:"name"`
		Partitions int32  `json:"partitions"`
		Replicas   int16  `json:"replicas"`
		Error      string `json:"error,omitempty"`
	}
	var out []created
	var errs []error
	t := &table{header: []string{"TOPIC", "PARTITIONS", "REPLICAS", "STATUS"}}
	for _, r := range resps.Sorted() {
		c := created{Name: r.Topic, Partitions: r.NumPartitions, Replicas: r.ReplicationFactor}
		status := "created"
		if err := firstErr(r.Topic, r.Err, r.ErrMessage); err != nil {
			c.Error, status = err.Error(), r.Err.Error()
			errs = append(errs, err)
		}
		out = append(out, c)
		t.add(c.Name, c.Partitions, c.Replicas, status)
	}
	if err := g.print(out, t); err != nil {
		return err
	}
	return errors.Join(errs...)
}

func (g *globals) topicDelete(ctx context.Context, adm *kadm.Client, topics []string) error {
	resps, err := adm.DeleteTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	var results []topicResult
	for _, r := range resps.Sorted() {
		results = append(results, topicResult{r.Topic, r.Err, r.ErrMessage})
	}
	return g.printResults("deleted", results)
}

// topicResult is what the broker answered for one topic of a change.
type topicResult struct {
	name string
	err  error
	msg  string
}

// printResults prints one status line per topic (done, or the broker's
// error) and returns the errors joined: the command fails if any topic did.
func (g *globals) printResults(done string, results []topicResult) error {
	type outcome struct {
		Name  string `json:"name"`
		Error string `json:"error,omitempty"`
	}
	var out []outcome
	var errs []error
	t := &table{header: []string{"TOPIC", "STATUS"}}
	for _, r := range results {
		o := outcome{Name: r.name}
		status := done
		if err := firstErr(r.name, r.err, r.msg); err != nil {
			o.Error, status = err.Error(), r.err.Error()
			errs = append(errs, err)
		}
		out = append(out, o)
		t.add(o.Name, status)
	}
	if err := g.print(out, t); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// errAlterUnsupported is what alter-config says when the broker does not
// serve IncrementalAlterConfigs (Tributary's core before issue 17, Kafka
// before 2.3).
var errAlterUnsupported = errors.New("the broker does not support altering configs (IncrementalAlterConfigs); recreate the topic with --config, or see tributary topic describe for the current values")

func topicAlterConfig(cmd *cobra.Command, g *globals, topics, set, unset []string) error {
	var alters []kadm.AlterConfig
	for _, kv := range set {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--set %q: want key=value", kv)
		}
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
	}
	for _, k := range unset {
		alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	if len(alters) == 0 {
		return errors.New("nothing to change: give --set key=value or --delete key")
	}
	ctx, adm, done, err := g.session(cmd)
	if err != nil {
		return err
	}
	defer done()
	resps, err := adm.AlterTopicConfigs(ctx, alters, topics...)
	if unsupported(err) {
		return errAlterUnsupported
	}
	if err != nil {
		return fmt.Errorf("alter configs: %w", err)
	}
	var results []topicResult
	for _, r := range resps {
		if unsupported(r.Err) {
			return errAlterUnsupported
		}
		results = append(results, topicResult{r.Name, r.Err, r.ErrMessage})
	}
	return g.printResults("altered", results)
}

// unsupported reports whether err says the broker does not serve a request
// at all: kgo's "request key is unknown" when ApiVersions does not list it,
// or UNSUPPORTED_VERSION from the broker.
func unsupported(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, kerr.UnsupportedVersion) || strings.Contains(err.Error(), "request key is unknown") ||
		strings.Contains(err.Error(), "broker is too old")
}
