package groups

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are per coordinator so tests can run several.
type metrics struct {
	c            *Coordinator
	rebalances   prometheus.Counter
	expirations  prometheus.Counter
	commits      prometheus.Counter
	commitErrors prometheus.Counter
	groupsDesc   *prometheus.Desc
	membersDesc  *prometheus.Desc
}

func newMetrics(c *Coordinator) *metrics {
	return &metrics{
		c: c,
		rebalances: counter("tributary_core_group_rebalances_total",
			"Rebalances started (join phases), all groups."),
		expirations: counter("tributary_core_group_session_expirations_total",
			"Members removed because their session timed out."),
		commits: counter("tributary_core_group_offset_commits_total",
			"Partition offsets committed."),
		commitErrors: counter("tributary_core_group_offset_commit_errors_total",
			"OffsetCommit requests whose write to the metadata store failed."),
		groupsDesc: prometheus.NewDesc("tributary_core_groups",
			"Consumer groups by state.", []string{"state"}, nil),
		membersDesc: prometheus.NewDesc("tributary_core_group_members",
			"Members of all consumer groups.", nil, nil),
	}
}

// counter is an unlabelled counter of the coordinator.
func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, col := range []prometheus.Collector{m.rebalances, m.expirations, m.commits, m.commitErrors, gaugeCollector{m}} {
		errs = append(errs, r.Register(col))
	}
	return errors.Join(errs...)
}

// gaugeCollector reads group counts at scrape time instead of keeping
// gauges in step with every state change.
type gaugeCollector struct{ m *metrics }

func (g gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.m.groupsDesc
	ch <- g.m.membersDesc
}

func (g gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	c := g.m.c
	counts := make(map[groupState]int)
	members := 0
	c.mu.Lock()
	for _, gr := range c.groups {
		counts[gr.state]++
		members += len(gr.members)
	}
	c.mu.Unlock()
	for _, s := range allStates {
		ch <- prometheus.MustNewConstMetric(g.m.groupsDesc, prometheus.GaugeValue, float64(counts[s]), s.String())
	}
	ch <- prometheus.MustNewConstMetric(g.m.membersDesc, prometheus.GaugeValue, float64(members))
}
