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
	gauge := func(name, help string, f func(Progress) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, snap(f))
	}
	counter := func(name, help string, f func(Progress) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, snap(f))
	}
	cs := []prometheus.Collector{
		gauge("tributary_sim_devices_connected", "Devices with an open MQTT connection.", func(p Progress) float64 { return float64(p.Connected) }),
		gauge("tributary_sim_queued_readings", "Readings waiting in offline queues.", func(p Progress) float64 { return float64(p.Queued) }),
		counter("tributary_sim_readings_generated_total", "Readings generated.", func(p Progress) float64 { return float64(p.Generated) }),
		counter("tributary_sim_readings_sent_total", "Distinct readings published.", func(p Progress) float64 { return float64(p.Sent) }),
		counter("tributary_sim_readings_acked_total", "Readings acknowledged (PUBACK, or written for QoS 0).", func(p Progress) float64 { return float64(p.Acked) }),
		counter("tributary_sim_readings_dropped_total", "Readings dropped by full offline queues.", func(p Progress) float64 { return float64(p.Dropped) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
