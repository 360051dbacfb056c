package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func groupCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "group", Short: "Consumer groups: list, describe, lag, reset offsets"}
	c.AddCommand(
		&cobra.Command{
			Use:     "list",
			Aliases: []string{"ls"},
			Short:   "List consumer groups with their state",
			Args:    cobra.NoArgs,
			RunE:    g.inSession(g.groupList),
		},
		&cobra.Command{
			Use:               "describe GROUP...",
			Short:             "Show a group's state, members and their assignments",
			Args:              cobra.MinimumNArgs(1),
			ValidArgsFunction: g.completeGroups,
			RunE:              g.inSession(g.groupDescribe),
		},
		&cobra.Command{
			Use:               "lag GROUP...",
			Short:             "Show committed offset, log end and lag per partition",
			Args:              cobra.MinimumNArgs(1),
			ValidArgsFunction: g.completeGroups,
			RunE:              g.inSession(g.groupLag),
		},
		resetOffsetsCmd(g),
	)
	return c
}

// completeGroups offers the cluster's group names for shell completion.
func (g *globals) completeGroups(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	return g.complete(cmd, func(ctx context.Context, adm *kadm.Client) ([]string, error) {
		gs, err := adm.ListGroups(ctx)
		return gs.Groups(), err
	})
}

func (g *globals) groupList(ctx context.Context, adm *kadm.Client, _ []string) error {
	gs, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	type listed struct {
		Group        string `json:"group"`
		State        string `json:"state"`
		ProtocolType string `json:"protocol_type"`
		Coordinator  int32  `json:"coordinator"`
	}
	out := []listed{}
	t := &table{header: []string{"GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"}}
	for _, l := range gs.Sorted() {
		out = append(out, listed{l.Group, l.State, l.ProtocolType, l.Coordinator})
		t.add(l.Group, dash(l.State), dash(l.ProtocolType), l.Coordinator)
	}
	return g.print(out, t)
}

type memberInfo struct {
	MemberID   string   `json:"member_id"`
	InstanceID string   `json:"instance_id,omitempty"`
	ClientID   string   `json:"client_id"`
	ClientHost string   `json:"client_host"`
	Assigned   []string `json:"assigned"`
}

type describedGroup struct {
	Group        string       `json:"group"`
	State        string       `json:"state"`
	Protocol     string       `json:"protocol"`
	ProtocolType string       `json:"protocol_type"`
	Coordinator  int32        `json:"coordinator"`
	Members      []memberInfo `json:"members"`
	TotalLag     int64        `json:"total_lag"`
	Lag          []lagRow     `json:"lag"`
}

type lagRow struct {
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed_offset"` // -1: no commit
	LogStart  int64  `json:"log_start_offset"`
	LogEnd    int64  `json:"log_end_offset"`
	Lag       int64  `json:"lag"` // -1: unknown
	MemberID  string `json:"member_id,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Error     string `json:"error,omitempty"`
}

// describeWithLag uses kadm.Lag: DescribeGroups, OffsetFetch and the log
// ends in one go, so describe and lag show the same numbers.
func describeWithLag(ctx context.Context, adm *kadm.Client, groups []string) ([]describedGroup, error) {
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return nil, fmt.Errorf("describe groups: %w", err)
	}
	var out []describedGroup
	for _, name := range groups {
		l, ok := lags[name]
		if !ok {
			return nil, fmt.Errorf("group %q: no answer from its coordinator", name)
		}
		if err := l.Error(); err != nil {
			return nil, fmt.Errorf("group %q: %w", name, err)
		}
		if l.State == "Dead" {
			return nil, fmt.Errorf("group %q does not exist (tributary group list shows the groups)", name)
		}
		d := describedGroup{Group: name, State: l.State, Protocol: l.Protocol, ProtocolType: l.ProtocolType,
			Coordinator: l.Coordinator.NodeID, Lag: []lagRow{}}
		for _, m := range l.Members {
			mi := memberInfo{MemberID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost, Assigned: []string{}}
			if m.InstanceID != nil {
				mi.InstanceID = *m.InstanceID
			}
			if c, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range c.Topics {
					ps := append([]int32(nil), t.Partitions...)
					sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
					for _, p := range ps {
						mi.Assigned = append(mi.Assigned, fmt.Sprintf("%s/%d", t.Topic, p))
					}
				}
			}
			d.Members = append(d.Members, mi)
		}
		for _, ml := range l.Lag.Sorted() {
			r := lagRow{Group: name, Topic: ml.Topic, Partition: ml.Partition, Committed: ml.Commit.At,
				LogStart: ml.Start.Offset, LogEnd: ml.End.Offset, Lag: ml.Lag}
			if ml.Member != nil {
				r.MemberID, r.ClientID = ml.Member.MemberID, ml.Member.ClientID
			}
			if ml.Err != nil {
				r.Error = ml.Err.Error()
			}
			if r.Lag > 0 {
				d.TotalLag += r.Lag
			}
			d.Lag = append(d.Lag, r)
		}
		out = append(out, d)
	}
	return out, nil
}

func lagTable(rows []lagRow) *table {
	t := &table{header: []string{"GROUP", "TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "MEMBER", "CLIENT"}}
	for _, r := range rows {
		committed := fmt.Sprint(r.Committed)
		if r.Committed < 0 {
			committed = "-"
		}
		lag := fmt.Sprint(r.Lag)
		if r.Lag < 0 {
			lag = "?"
			if r.Error != "" {
				lag = "? (" + r.Error + ")"
			}
		}
		t.add(r.Group, r.Topic, r.Partition, committed, r.LogEnd, lag, dash(r.MemberID), dash(r.ClientID))
	}
	return t
}

func (g *globals) groupDescribe(ctx context.Context, adm *kadm.Client, groups []string) error {
	ds, err := describeWithLag(ctx, adm, groups)
	if err != nil {
		return err
	}
	var tables []*table
	for _, d := range ds {
		head := &table{}
		head.add("GROUP", d.Group)
		head.add("STATE", d.State)
		head.add("PROTOCOL", dash(d.ProtocolType)+"/"+dash(d.Protocol))
		head.add("COORDINATOR", d.Coordinator)
		head.add("MEMBERS", len(d.Members))
		head.add("TOTAL-LAG", d.TotalLag)
		tables = append(tables, head)
		if len(d.Members) > 0 {
			mt := &table{header: []string{"MEMBER", "CLIENT", "HOST", "ASSIGNED"}}
			for _, m := range d.Members {
				mt.add(m.MemberID, m.ClientID, m.ClientHost, dash(strings.Join(m.Assigned, ",")))
			}
			tables = append(tables, mt)
		}
		tables = append(tables, lagTable(d.Lag))
	}
	if len(ds) == 1 {
		return g.print(ds[0], tables...)
	}
	return g.print(ds, tables...)
}

func (g *globals) groupLag(ctx context.Context, adm *kadm.Client, groups []string) error {
	ds, err := describeWithLag(ctx, adm, groups)
	if err != nil {
		return err
	}
	rows := []lagRow{}
	for _, d := range ds {
		rows = append(rows, d.Lag...)
	}
	return g.print(rows, lagTable(rows))
}

type resetOpts struct {
	topics   []string
	earliest bool
	latest   bool
	offset   int64
	datetime string
	dryRun   bool
}

func resetOffsetsCmd(g *globals) *cobra.Command {
	o := resetOpts{offset: -1}
	c := &cobra.Command{
		Use:   "reset-offsets GROUP",
		Short: "Move a group's committed offsets (the group must have no active members)",
		Long: `reset-offsets commits new offsets for a group, for the topics given with
--topic or, without it, for every topic the group has committed offsets for.
Exactly one of --to-earliest, --to-latest, --to-offset or --to-datetime says
where. Like Kafka's tool it refuses while the group has members: stop the
consumers first. --dry-run prints the plan and commits nothing.`,
		Example: `  tributary group reset-offsets analytics --to-earliest --dry-run
  tributary group reset-offsets analytics --topic sensors --to-datetime 2026-12-06T12:00:00Z`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeGroups,
		RunE:              func(cmd *cobra.Command, args []string) error { return resetOffsets(cmd, g, args[0], o) },
	}
	f := c.Flags()
	f.StringSliceVarP(&o.topics, "topic", "t", nil, "topics to reset (default: every topic with a committed offset)")
	f.BoolVar(&o.earliest, "to-earliest", false, "reset to each partition's log start")
	f.BoolVar(&o.latest, "to-latest", false, "reset to each partition's log end")
	f.Int64Var(&o.offset, "to-offset", -1, "reset to this offset (clamped to what the partition holds)")
	f.StringVar(&o.datetime, "to-datetime", "", "reset to the first record at or after this time (RFC 3339, or a duration ago like 1h)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan without committing")
	return c
}

type planRow struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Current   int64  `json:"current_offset"` // -1: no commit
	New       int64  `json:"new_offset"`
}

func resetOffsets(cmd *cobra.Command, g *globals, group string, o resetOpts) error {
	chosen := 0
	for _, b := range []bool{o.earliest, o.latest, o.offset >= 0, o.datetime != ""} {
		if b {
			chosen++
		}
	}
	if chosen != 1 {
		return errors.New("give exactly one of --to-earliest, --to-latest, --to-offset N or --to-datetime T")
	}
	var millis int64
	if o.datetime != "" {
		at, err := parseFrom(o.datetime, time.Now())
		if err != nil || at.kind != "time" {
			return fmt.Errorf("--to-datetime %q: want an RFC 3339 time (2026-12-06T15:04:05Z) or a duration ago (1h)", o.datetime)
		}
		millis = at.millis
	}
	ctx, adm, done, err := g.session(cmd)
	if err != nil {
		return err
	}
	defer done()

	dg, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("describe group %s: %w", group, err)
	}
	d := dg[group]
	if err := firstErr("group "+group, d.Err, d.ErrMessage); err != nil {
		return err
	}
	if len(d.Members) > 0 {
		return fmt.Errorf("group %s has %d active members (state %s): stop its consumers first; offsets can only be reset while the group is empty",
			group, len(d.Members), d.State)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return fmt.Errorf("fetch offsets of %s: %w", group, err)
	}
	topics := o.topics
	if len(topics) == 0 {
		for t := range committed {
			topics = append(topics, t)
		}
		sort.Strings(topics)
		if len(topics) == 0 {
			return fmt.Errorf("group %s has no committed offsets: name the topics with --topic", group)
		}
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list offsets: %w", err)
	}
	var byTime kadm.ListedOffsets
	if o.datetime != "" {
		if byTime, err = adm.ListOffsetsAfterMilli(ctx, millis, topics...); err != nil {
			return fmt.Errorf("offsets for %s: %w", o.datetime, err)
		}
	}
	var plan []planRow
	commit := kadm.Offsets{}
	for _, t := range topics {
		if len(ends[t]) == 0 {
			return fmt.Errorf("topic %q does not exist", t)
		}
		for _, p := range sortedPartitions(ends[t]) {
			end := ends[t][p]
			start := starts[t][p]
			if end.Err != nil || start.Err != nil {
				return fmt.Errorf("%s/%d: %w", t, p, errors.Join(end.Err, start.Err))
			}
			var to int64
			switch {
			case o.earliest:
				to = start.Offset
			case o.latest:
				to = end.Offset
			case o.offset >= 0:
				to = min(max(o.offset, start.Offset), end.Offset)
			default:
				to = end.Offset // nothing at or after the time: the end
				if lo, ok := byTime.Lookup(t, p); ok && lo.Err == nil && lo.Offset >= 0 {
					to = lo.Offset
				}
			}
			cur := int64(-1)
			if c, ok := committed.Lookup(t, p); ok && c.Err == nil {
				cur = c.At
			}
			plan = append(plan, planRow{t, p, cur, to})
			commit.Add(kadm.Offset{Topic: t, Partition: p, At: to, LeaderEpoch: -1})
		}
	}
	t := &table{header: []string{"TOPIC", "PARTITION", "CURRENT", "NEW", "CHANGE"}}
	for _, r := range plan {
		cur, change := "-", "-"
		if r.Current >= 0 {
			cur, change = fmt.Sprint(r.Current), fmt.Sprintf("%+d", r.New-r.Current)
		}
		t.add(r.Topic, r.Partition, cur, r.New, change)
	}
	out := struct {
		Group     string    `json:"group"`
		DryRun    bool      `json:"dry_run"`
		Committed bool      `json:"committed"`
		Plan      []planRow `json:"plan"`
	}{Group: group, DryRun: o.dryRun, Plan: plan}
	if o.dryRun {
		if err := g.print(out, t); err != nil {
			return err
		}
		fmt.Fprintln(g.stderr, "dry run: nothing committed")
		return nil
	}
	resps, err := adm.CommitOffsets(ctx, group, commit)
	if err != nil {
		return fmt.Errorf("commit offsets for %s: %w", group, err)
	}
	if err := resps.Error(); err != nil {
		return fmt.Errorf("commit offsets for %s: %w (does the group still have members?)", group, err)
	}
	out.Committed = true
	return g.print(out, t)
}
