package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func clusterCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "cluster", Short: "Brokers, controller and cluster health"}
	c.AddCommand(&cobra.Command{
		Use:   "info",
		Short: "List the brokers and the controller",
		Args:  cobra.NoArgs,
		RunE:  g.inSession(g.clusterInfo),
	})
	c.AddCommand(&cobra.Command{
		Use:   "health",
		Short: "Check that metadata answers and every partition has a leader and its full ISR",
		Long: `health asks for the metadata of every topic (internal ones included) and
reports partitions without a leader and partitions whose in-sync replica set
is smaller than their replica set. It exits non-zero when the cluster is not
healthy, so scripts can wait on it.`,
		Args: cobra.NoArgs,
		RunE: g.inSession(g.clusterHealth),
	})
	return c
}

type brokerInfo struct {
	ID         int32  `json:"id"`
	Host       string `json:"host"`
	Port       int32  `json:"port"`
	Rack       string `json:"rack,omitempty"`
	Controller bool   `json:"controller"`
}

func (g *globals) clusterInfo(ctx context.Context, adm *kadm.Client, _ []string) error {
	m, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("metadata from %s: %w", strings.Join(g.brokers, ","), err)
	}
	out := struct {
		ClusterID  string       `json:"cluster_id"`
		Controller int32        `json:"controller"`
		Brokers    []brokerInfo `json:"brokers"`
	}{m.Cluster, m.Controller, nil}
	t := &table{header: []string{"ID", "HOST", "PORT", "RACK", "CONTROLLER"}}
	for _, b := range m.Brokers {
		bi := brokerInfo{ID: b.NodeID, Host: b.Host, Port: b.Port, Controller: b.NodeID == m.Controller}
		if b.Rack != nil {
			bi.Rack = *b.Rack
		}
		out.Brokers = append(out.Brokers, bi)
		ctl := ""
		if bi.Controller {
			ctl = "*"
		}
		t.add(bi.ID, bi.Host, bi.Port, dash(bi.Rack), ctl)
	}
	head := &table{}
	head.add("CLUSTER", dash(m.Cluster))
	head.add("CONTROLLER", m.Controller)
	return g.print(out, head, t)
}

type partitionProblem struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Problem   string  `json:"problem"`
	Leader    int32   `json:"leader"`
	Replicas  []int32 `json:"replicas"`
	ISR       []int32 `json:"isr"`
}

func (g *globals) clusterHealth(ctx context.Context, adm *kadm.Client, _ []string) error {
	m, err := adm.Metadata(ctx)
	if err != nil {
		return fmt.Errorf("cluster unreachable: metadata from %s: %w", strings.Join(g.brokers, ","), err)
	}
	out := struct {
		Healthy         bool               `json:"healthy"`
		Brokers         []int32            `json:"brokers"`
		Controller      int32              `json:"controller"`
		Topics          int                `json:"topics"`
		Partitions      int                `json:"partitions"`
		Leaderless      int                `json:"leaderless_partitions"`
		UnderReplicated int                `json:"under_replicated_partitions"`
		Problems        []partitionProblem `json:"problems"`
	}{Brokers: m.Brokers.NodeIDs(), Controller: m.Controller, Topics: len(m.Topics)}
	for _, name := range m.Topics.Names() {
		td := m.Topics[name]
		for _, p := range td.Partitions.Sorted() {
			out.Partitions++
			prob := ""
			switch {
			case p.Leader < 0 || p.Err != nil:
				out.Leaderless++
				prob = "no leader"
				if p.Err != nil {
					prob += " (" + p.Err.Error() + ")"
				}
			case len(p.ISR) < len(p.Replicas):
				out.UnderReplicated++
				prob = "under-replicated"
			}
			if prob != "" {
				out.Problems = append(out.Problems, partitionProblem{name, p.Partition, prob, p.Leader, p.Replicas, p.ISR})
			}
		}
	}
	sort.Slice(out.Problems, func(i, j int) bool {
		a, b := out.Problems[i], out.Problems[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	out.Healthy = len(out.Problems) == 0 && len(out.Brokers) > 0
	head := &table{}
	head.add("HEALTHY", out.Healthy)
	head.add("BROKERS", ids(out.Brokers))
	head.add("CONTROLLER", out.Controller)
	head.add("PARTITIONS", out.Partitions)
	head.add("LEADERLESS", out.Leaderless)
	head.add("UNDER-REPLICATED", out.UnderReplicated)
	tables := []*table{head}
	if len(out.Problems) > 0 {
		t := &table{header: []string{"TOPIC", "PARTITION", "PROBLEM", "LEADER", "REPLICAS", "ISR"}}
		for _, p := range out.Problems {
			t.add(p.Topic, p.Partition, p.Problem, p.Leader, ids(p.Replicas), ids(p.ISR))
		}
		tables = append(tables, t)
	}
	if err := g.print(out, tables...); err != nil {
		return err
	}
	if !out.Healthy {
		return errors.New("cluster is not healthy")
	}
	return nil
}

func ids(v []int32) string {
	if len(v) == 0 {
		return "-"
	}
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// firstErr turns kadm's per-item errors into one error naming the item.
func firstErr(name string, err error, msg string) error {
	if err == nil {
		return nil
	}
	if msg != "" {
		return fmt.Errorf("%s: %w: %s", name, err, msg)
	}
	return fmt.Errorf("%s: %w", name, err)
}
