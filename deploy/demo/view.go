package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// edgeSample is one refresh's reading of an edge and the fleet publishing to it.
type edgeSample struct {
	Name, MQTT string
	Totals     edgeTotals
	Err        error // scraping the edge failed
	Fleet      fleetTotals
	FleetErr   error // scraping the fleet failed
	Devices    int   // fleet size
}

type edgeRow struct {
	edgeSample
	StoredRate, ForwardRate float64
}

type streamRow struct {
	Topic    string
	Rate     float64
	Consumed float64
	Lag      int64
}

type windowRows struct {
	Topic string
	Rows  []window
}

type deviceRow struct {
	Device string
	Seen   bool
	latest
}

// view is everything one refresh of the terminal shows.
type view struct {
	Now     time.Time
	Uptime  time.Duration
	DataDir string
	Brokers []string
	Group   string
	// BridgeOff explains why the edges do not forward (empty: they do).
	BridgeOff string
	Edges     []edgeRow
	Streams   []streamRow
	Devices   []deviceRow
	// Windows are the latest aggregated window per shown device, per
	// derived topic (the edges' aggregation).
	Windows []windowRows
	// Latency percentiles over the readings consumed since the last refresh.
	P50, P99    time.Duration
	LatencyN    int
	Undecodable float64
	ConsumerErr string
	// Exited lists children that stopped on their own.
	Exited []string
}

// tracker turns counters into rates between refreshes.
type tracker struct {
	at    time.Time
	edges map[string]edgeTotals
	topic map[string]float64
}

// build computes one view from this refresh's samples.
func (t *tracker) build(now time.Time, edges []edgeSample, cs consumerStats, devices []string) view {
	var dt time.Duration
	if !t.at.IsZero() {
		dt = now.Sub(t.at)
	}
	v := view{Now: now}
	prevEdges, prevTopic := t.edges, t.topic
	t.at, t.edges, t.topic = now, map[string]edgeTotals{}, map[string]float64{}
	for _, e := range edges {
		row := edgeRow{edgeSample: e}
		if e.Err == nil {
			t.edges[e.Name] = e.Totals
			if p, ok := prevEdges[e.Name]; ok {
				row.StoredRate = rate(p.Appended, e.Totals.Appended, dt)
				row.ForwardRate = rate(p.Forwarded, e.Totals.Forwarded, dt)
			}
		}
		v.Edges = append(v.Edges, row)
	}
	for topic, tt := range cs.Topics {
		row := streamRow{Topic: topic, Consumed: tt.Records, Lag: tt.Lag}
		if p, ok := prevTopic[topic]; ok {
			row.Rate = rate(p, tt.Records, dt)
		}
		t.topic[topic] = tt.Records
		v.Streams = append(v.Streams, row)
	}
	slices.SortFunc(v.Streams, func(a, b streamRow) int { return strings.Compare(a.Topic, b.Topic) })
	for _, d := range devices {
		l, ok := cs.Latest[d]
		v.Devices = append(v.Devices, deviceRow{Device: d, Seen: ok, latest: l})
	}
	for topic, ws := range cs.Windows {
		wr := windowRows{Topic: topic}
		for _, d := range devices {
			if w, ok := ws[d]; ok {
				wr.Rows = append(wr.Rows, w)
			}
		}
		v.Windows = append(v.Windows, wr)
	}
	slices.SortFunc(v.Windows, func(a, b windowRows) int { return strings.Compare(a.Topic, b.Topic) })
	v.LatencyN = len(cs.Latencies)
	v.P50 = percentile(cs.Latencies, 0.50)
	v.P99 = percentile(cs.Latencies, 0.99)
	v.Undecodable = cs.Undecodable
	v.ConsumerErr = cs.Err
	return v
}

// percentile is the q-quantile (nearest rank) of ds; it sorts ds in place.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds))+0.5) - 1
	i = max(0, min(i, len(ds)-1))
	return ds[i]
}

// render writes the view as plain text (the caller clears the screen).
func (v view) render(w io.Writer) {
	fmt.Fprintf(w, "Tributary demo   %s   up %s   (Ctrl-C stops everything; data and logs stay in %s)\n",
		v.Now.UTC().Format("15:04:05 UTC"), v.Uptime.Truncate(time.Second), v.DataDir)
	broker := "broker"
	if len(v.Brokers) != 1 {
		broker = "brokers"
	}
	fmt.Fprintf(w, "core: %d %s at %s   another terminal: kcat -b %s -C -t sensors\n",
		len(v.Brokers), broker, strings.Join(v.Brokers, ","), first(v.Brokers))
	if v.BridgeOff != "" {
		fmt.Fprintf(w, "bridge: OFF (%s)\n", v.BridgeOff)
	}
	for _, e := range v.Exited {
		fmt.Fprintf(w, "DOWN: %s\n", e)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "EDGE\tMQTT\tDEVICES UP\tSTORED/s\tSTORED\tDEAD LETTERS\tBACKLOG\tFORWARDED/s\tDISK\t")
	for _, e := range v.Edges {
		if e.Err != nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t\n", e.Name, e.MQTT, devicesUp(e.edgeSample))
			continue
		}
		backlog, fwd := "-", "-"
		if e.Totals.Bridge {
			backlog, fwd = fmt.Sprintf("%.0f", e.Totals.Backlog), fmt.Sprintf("%.1f", e.ForwardRate)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.0f\t%.0f\t%s\t%s\t%s\t\n", e.Name, e.MQTT, devicesUp(e.edgeSample),
			e.StoredRate, e.Totals.Appended, e.Totals.DeadLetters, backlog, fwd, bytesText(e.Totals.LogBytes))
	}
	_ = tw.Flush()
	for _, e := range v.Edges {
		if e.Err != nil {
			fmt.Fprintf(w, "  %s: %v\n", e.Name, e.Err)
		}
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "streams on the core, read by consumer group %q:\n", v.Group)
	if len(v.Streams) == 0 {
		fmt.Fprintln(w, "  (nothing consumed yet)")
	} else {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "STREAM\tRECORDS/s\tCONSUMED\tLAG\t")
		for _, s := range v.Streams {
			fmt.Fprintf(tw, "%s\t%.1f\t%.0f\t%d\t\n", s.Topic, s.Rate, s.Consumed, s.Lag)
		}
		_ = tw.Flush()
	}
	if v.LatencyN > 0 {
		fmt.Fprintf(w, "device time to consumer, last refresh: p50 %s  p99 %s  (%d readings)\n",
			durText(v.P50), durText(v.P99), v.LatencyN)
	}
	if v.Undecodable > 0 {
		fmt.Fprintf(w, "records that are not readings: %.0f\n", v.Undecodable)
	}
	if v.ConsumerErr != "" {
		fmt.Fprintf(w, "consumer: last error: %s\n", v.ConsumerErr)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "latest reading per device:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "DEVICE\tVIA EDGE\tSEQ\tTEMP °C\tHUM %\tVIB m/s²\tDEVICE→CONSUMER\t")
	for _, d := range v.Devices {
		if !d.Seen {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t\n", d.Device)
			continue
		}
		r := d.Reading
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.1f\t%.3f\t%s\t\n", d.Device, dash(d.EdgeID), r.Seq, r.Temp, r.Hum, r.Vib,
			durText(d.Latency))
	}
	_ = tw.Flush()
	for _, wr := range v.Windows {
		fmt.Fprintf(w, "\nlatest window per device in %s (aggregated on the edge, exactly once; kcat -b %s -C -t %s):\n",
			wr.Topic, first(v.Brokers), wr.Topic)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "DEVICE\tVIA EDGE\tWINDOW (UTC)\tREADINGS\tMIN °C\tMEAN °C\tMAX °C\tP99 °C\t")
		for _, x := range wr.Rows {
			fmt.Fprintf(tw, "%s\t%s\t%s–%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t\n", x.Group, dash(x.EdgeID),
				time.UnixMilli(x.WindowStart).UTC().Format("15:04:05"), time.UnixMilli(x.WindowEnd).UTC().Format("15:04:05"),
				x.Count, x.Temp.Min, x.Temp.Mean, x.Temp.Max, x.Temp.P99)
		}
		_ = tw.Flush()
	}
}

func devicesUp(e edgeSample) string {
	if e.FleetErr != nil {
		return fmt.Sprintf("?/%d", e.Devices)
	}
	return fmt.Sprintf("%.0f/%d", e.Fleet.Connected, e.Devices)
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// durText rounds a latency for reading at a glance.
func durText(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < 10*time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

func bytesText(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}
