package fleet

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/firmware-sim/device"
)

// registerMetrics exposes the fleet's live counters on reg. They are read
// from the devices at scrape time, so the hot path pays nothing for them.
func registerMetrics(reg prometheus.Registerer, devs []*device.Device) error {
	snap := func(f func(Progress) float64) func() float64 {
		return func() float64 { return f(Snapshot(devs)) }
	}
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tributary_sim_devices_connected", Help: "Devices with an open MQTT connection."},
			snap(func(p Progress) float64 { return float64(p.Connected) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tributary_sim_queued_readings", Help: "Readings waiting in offline queues."},
			snap(func(p Progress) float64 { return float64(p.Queued) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tributary_sim_readings_generated_total", Help: "Readings generated."},
			snap(func(p Progress) float64 { return float64(p.Generated) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tributary_sim_readings_sent_total", Help: "Distinct readings published."},
			snap(func(p Progress) float64 { return float64(p.Sent) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tributary_sim_readings_acked_total", Help: "Readings acknowledged (PUBACK, or written for QoS 0)."},
			snap(func(p Progress) float64 { return float64(p.Acked) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tributary_sim_readings_dropped_total", Help: "Readings dropped by full offline queues."},
			snap(func(p Progress) float64 { return float64(p.Dropped) })),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
