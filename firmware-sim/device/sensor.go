// Package device simulates one sensor's firmware: a drifting sensor model,
// a sequence counter, a bounded offline queue and an MQTT connection that
// comes back with backoff after the broker goes away.
package device

import (
	"math/rand/v2"
)

// walk is one bounded random-walk quantity: it drifts by small steps and
// is pulled gently back towards its centre, as real temperatures do.
type walk struct {
	v, lo, hi, centre, step, pull float64
}

func (w *walk) next(r *rand.Rand) float64 {
	w.v += r.NormFloat64()*w.step + (w.centre-w.v)*w.pull
	// Reflect at the bounds rather than clamp, so values never stick to a rail.
	if w.v < w.lo {
		w.v = 2*w.lo - w.v
	}
	if w.v > w.hi {
		w.v = 2*w.hi - w.v
	}
	w.v = min(max(w.v, w.lo), w.hi)
	return w.v
}

// Sensor produces temperature (°C), relative humidity (%) and vibration
// (m/s²) values. Its state depends only on the rand source, so a seeded run
// produces the same values.
type Sensor struct {
	temp, hum, vib walk
}

// NewSensor starts a sensor at a random point within realistic ranges.
func NewSensor(r *rand.Rand) *Sensor {
	t := 15 + r.Float64()*10
	h := 35 + r.Float64()*30
	v := 0.2 + r.Float64()*0.5
	return &Sensor{
		temp: walk{v: t, lo: -20, hi: 60, centre: t, step: 0.05, pull: 0.01},
		hum:  walk{v: h, lo: 0, hi: 100, centre: h, step: 0.2, pull: 0.01},
		vib:  walk{v: v, lo: 0, hi: 20, centre: v, step: 0.05, pull: 0.1},
	}
}

// Next advances the sensor and returns the new values.
func (s *Sensor) Next(r *rand.Rand) (temp, hum, vib float64) {
	return round(s.temp.next(r), 100), round(s.hum.next(r), 10), round(s.vib.next(r), 1000)
}

// round keeps the precision a real sensor reports, which keeps JSON short.
func round(v, scale float64) float64 {
	if v >= 0 {
		return float64(int64(v*scale+0.5)) / scale
	}
	return float64(int64(v*scale-0.5)) / scale
}
