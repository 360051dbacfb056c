package cluster

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	elections *prometheus.CounterVec
	proposals *prometheus.CounterVec
	forwarded prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, n *Node) *metrics {
	m := &metrics{
		elections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_core_cluster_partition_leader_changes_total",
			Help: "Partition leader changes applied to the metadata, by outcome (elected or offline).",
		}, []string{"outcome"}),
		proposals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_core_cluster_proposals_total",
			Help: "Metadata proposals made by this node, by result (ok, refused by the state machine, error).",
		}, []string{"result"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tributary_core_cluster_proposals_forwarded_total",
			Help: "Metadata proposals this node forwarded to the Raft leader.",
		}),
	}
	reg.MustRegister(m.elections, m.proposals, m.forwarded,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tributary_core_cluster_raft_leader",
			Help: "1 while this node is the Raft leader (the controller).",
		}, func() float64 {
			if n.IsController() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tributary_core_cluster_brokers_alive",
			Help: "Brokers registered alive in the metadata.",
		}, func() float64 { return float64(len(n.fsm.Metadata().LiveBrokers())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tributary_core_cluster_partitions_offline",
			Help: "Partitions without a leader (no in-sync replica alive).",
		}, func() float64 {
			var off int
			for _, t := range n.fsm.Metadata().Topics {
				for _, p := range t.Partitions {
					if p.Leader == NoLeader {
						off++
					}
				}
			}
			return float64(off)
		}),
	)
	return m
}
