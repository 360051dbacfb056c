package payload

import (
	"fmt"
	"math"
	"time"
	_ "time/tzdata" // zones for local device times on gateways without zoneinfo
)

// TimeUnit says how a device time field is written.
type TimeUnit string

// Time units a rule may name.
const (
	// UnitAuto reads numbers as ms when ≥ 1e11 (after 1973 in ms, after
	// 5138 in s) and as s otherwise, and text as RFC 3339, or as local
	// time without zone (Tasmota) in the rule's zone.
	UnitAuto    TimeUnit = "auto"
	UnitMillis  TimeUnit = "ms"
	UnitSeconds TimeUnit = "s"
	UnitRFC3339 TimeUnit = "rfc3339"
	// UnitLocal is ISO 8601 local time without a zone, e.g. Tasmota's
	// "2024-05-01T12:00:00", read in the rule's zone.
	UnitLocal TimeUnit = "local"
)

// TimeSpec is a compiled device-time source.
type TimeSpec struct {
	Path Path
	Unit TimeUnit
	Loc  *time.Location // for zone-less local times; nil means UTC
}

// NewTimeSpec checks a field pointer, a unit and an IANA zone name.
func NewTimeSpec(field, unit, zone string) (TimeSpec, error) {
	var ts TimeSpec
	p, err := ParsePath(field)
	if err != nil {
		return ts, err
	}
	ts.Path = p
	switch u := TimeUnit(unit); u {
	case "":
		ts.Unit = UnitAuto
	case UnitAuto, UnitMillis, UnitSeconds, UnitRFC3339, UnitLocal:
		ts.Unit = u
	default:
		return ts, fmt.Errorf("unit %q: want auto, ms, s, rfc3339 or local", unit)
	}
	ts.Loc = time.UTC
	if zone != "" {
		if ts.Loc, err = time.LoadLocation(zone); err != nil {
			return ts, fmt.Errorf("zone %q: %w", zone, err)
		}
	}
	return ts, nil
}

// localLayouts are the zone-less forms firmwares send.
var localLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05"}

// TimeMs turns a scalar into ms since the epoch as the spec says.
func (ts *TimeSpec) TimeMs(s Scalar) (int64, error) {
	if s.IsTime {
		return s.TimeMs, nil
	}
	if s.IsNum {
		unit := ts.Unit
		if unit == UnitAuto {
			unit = UnitSeconds
			if math.Abs(s.Num) >= 1e11 {
				unit = UnitMillis
			}
		}
		switch unit {
		case UnitMillis:
			if s.IsInt {
				return s.Int, nil
			}
			return floatMs(s.Num, 1)
		case UnitSeconds:
			if s.IsInt && s.Int < math.MaxInt64/1000 && s.Int > math.MinInt64/1000 {
				return s.Int * 1000, nil
			}
			return floatMs(s.Num, 1000)
		}
		return 0, fmt.Errorf("time %v is a number, the rule wants %s", s.Num, ts.Unit)
	}
	if !s.IsStr {
		return 0, fmt.Errorf("time is neither a number nor text")
	}
	if ts.Unit == UnitAuto || ts.Unit == UnitRFC3339 {
		if t, err := time.Parse(time.RFC3339Nano, s.Str); err == nil {
			return t.UnixMilli(), nil
		} else if ts.Unit == UnitRFC3339 {
			return 0, fmt.Errorf("time %q: %w", s.Str, err)
		}
	}
	if ts.Unit == UnitAuto || ts.Unit == UnitLocal {
		for _, l := range localLayouts {
			if t, err := time.ParseInLocation(l, s.Str, ts.Loc); err == nil {
				return t.UnixMilli(), nil
			}
		}
	}
	return 0, fmt.Errorf("time %q is not %s", s.Str, ts.Unit)
}

func floatMs(v, mul float64) (int64, error) {
	ms := v * mul
	if math.IsNaN(ms) || ms > 1<<62 || ms < -(1<<62) {
		return 0, fmt.Errorf("time %v out of range", v)
	}
	return int64(math.Round(ms)), nil
}
