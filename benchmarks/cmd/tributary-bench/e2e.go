package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/internal/tick"
	"github.com/twmb/franz-go/pkg/kgo"
)

// endToEnd measures sensor → consumer latency through the real binaries:
// tributary-core (one broker, then a 3-broker cluster), one tributary-edge
// bridged to it, MQTT devices each publishing 10 QoS 1 readings/s (100
// devices = 1k msgs/s, 1,000 = 10k msgs/s), and a franz-go consumer reading
// the core's "sensors" topic. Latency = consumer receive time − the time the
// device wrote the reading to its socket (kept per reading by the
// generator, to the microsecond), same machine and clock. Readings sent
// during the first warm-up seconds (connections, topic creation) are not
// counted. Then the MQTT-only floor: Debian's mosquitto (stores nothing)
// with a subscriber, under the same loads.
//
// $TRIBUTARY_E2E_ROWS selects rows, for a quick iteration on one of them:
// "1x1000,3x100" runs 1 broker × 1,000 devices and 3 brokers × 100
// devices, "floor" the Mosquitto rows; other device counts ("1x600") make
// a load sweep. $TRIBUTARY_E2E_PROFILE=PREFIX
// serves pprof from the edge and saves, during each measured window, a CPU
// profile (PREFIX-<brokers>x<devices>-edge-cpu.pprof) and then an
// execution trace (…-edge-trace.out; `go tool trace`).
func endToEnd(dir string, quick bool) ([]row, error) {
	want := map[string]bool{}
	for _, r := range strings.Split(os.Getenv("TRIBUTARY_E2E_ROWS"), ",") {
		if r = strings.TrimSpace(r); r != "" {
			want[r] = true
		}
	}
	selected := func(name string) bool { return len(want) == 0 || want[name] }
	type load struct{ brokers, devices int }
	loads := []load{{1, 100}, {1, 1000}, {3, 100}, {3, 1000}}
	// Any other "BxD" asked for runs too (a load sweep: 1x500,1x700).
	for r := range want {
		var l load
		if _, err := fmt.Sscanf(r, "%dx%d", &l.brokers, &l.devices); err == nil && (l.brokers == 1 || l.brokers == 3) &&
			l.devices > 0 && !slices.Contains(loads, l) {
			loads = append(loads, l)
		}
	}
	var rows []row
	for _, l := range loads {
		if !selected(fmt.Sprintf("%dx%d", l.brokers, l.devices)) {
			continue
		}
		r, err := e2eRun(dir, quick, l.brokers, l.devices)
		if err != nil {
			return rows, fmt.Errorf("e2e with %d core broker(s), %d devices: %w", l.brokers, l.devices, err)
		}
		rows = append(rows, r)
	}
	for _, devices := range []int{100, 1000} {
		if !selected("floor") {
			break
		}
		r, err := mosquittoFloor(dir, quick, devices)
		if err != nil {
			return rows, fmt.Errorf("mosquitto floor, %d devices: %w", devices, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// logAppendTime makes the core stamp each batch with its append time, so
// the consumer can split the path at the core's append.
var logAppendTime = [2]string{"message.timestamp.type", "LogAppendTime"}

// e2eTarget is issue 19's p99 target for a load.
func e2eTarget(brokers, devices int) string {
	switch {
	case devices >= 1000:
		return "p99 ≤ 50 ms"
	case brokers == 1:
		return "p99 ≤ 5 ms"
	default:
		return "p99 ≤ 10 ms"
	}
}

// latencyCell formats p50/p99/p999 of sorted latencies.
func latencyCell(lat []time.Duration, rate float64) string {
	return fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, p999 %.2f ms (%.0f msgs/s)", pctMs(lat, 0.5), pctMs(lat, 0.99), pctMs(lat, 0.999), rate)
}

// e2eRun is one end-to-end run against a single core broker (brokers 1) or
// a 3-broker cluster, where "sensors" is created first with RF=3 and
// min.insync.replicas 2 (the bridge produces with acks=all, so a reading
// reaches the consumer once every in-sync replica has it).
func e2eRun(dir string, quick bool, brokers, devices int) (row, error) {
	const perDevice = 10
	warmup, measure := 3*time.Second, 30*time.Second
	if quick {
		measure = 8 * time.Second
	}
	coreBin, err := productBin(dir, "tributary-core")
	if err != nil {
		return row{}, err
	}
	edgeBin, err := productBin(dir, "tributary-edge")
	if err != nil {
		return row{}, err
	}
	base, cleanup, err := scratchDir(dir, "e2e-bench-")
	if err != nil {
		return row{}, err
	}
	defer cleanup()

	ctx, cancel := context.WithTimeout(context.Background(), warmup+measure+2*time.Minute)
	defer cancel()
	var kafkaAddrs []string
	var cores []*child // for their CPU time
	coreName := "1 core broker"
	if brokers == 1 {
		addrs, err := reserveAddrs(2)
		if err != nil {
			return row{}, err
		}
		kafkaAddr, httpAddr := addrs[0], addrs[1]
		fmt.Fprintln(os.Stderr, "   e2e: starting 1 core broker and a bridged edge")
		core, err := startCore(coreBin, filepath.Join(base, "core"), kafkaAddr, httpAddr)
		if err != nil {
			return row{}, err
		}
		defer core.kill()
		cores = append(cores, core)
		kafkaAddrs = []string{kafkaAddr}
		if err := testkit.CreateClusterTopic(ctx, kafkaAddrs, "sensors", 4, 1, logAppendTime); err != nil {
			return row{}, err
		}
	} else {
		coreName = "3-broker core cluster (topic RF=3, min.insync.replicas 2)"
		fmt.Fprintln(os.Stderr, "   e2e: starting a 3-broker core cluster and a bridged edge")
		bs, err := configureCluster(coreBin, base)
		if err != nil {
			return row{}, err
		}
		defer func() {
			for _, b := range bs {
				b.stop()
			}
		}()
		for _, b := range bs {
			if err := b.start(); err != nil {
				return row{}, err
			}
		}
		for _, b := range bs {
			if err := waitListening(b.c, b.addr, 30*time.Second); err != nil {
				return row{}, err
			}
			kafkaAddrs = append(kafkaAddrs, b.addr)
			cores = append(cores, b.c)
		}
		// The edge's stream has 4 partitions; the bridge would create the
		// topic the same way, with the cluster's default RF of 3.
		if err := testkit.CreateClusterTopic(ctx, kafkaAddrs, "sensors", 4, 3, logAppendTime); err != nil {
			return row{}, err
		}
	}
	profile := os.Getenv("TRIBUTARY_E2E_PROFILE")
	edge, err := startBridgedEdgeWith(edgeBin, filepath.Join(base, "edge"), kafkaAddrs, profile != "")
	if err != nil {
		return row{}, err
	}
	defer edge.kill()

	fmt.Fprintf(os.Stderr, "   e2e: %d devices × %d QoS 1 msgs/s, %v warm-up + %v measured\n", devices, perDevice, warmup, measure)
	fleet, err := startTrackedFleet(edge.mqtt, "e2e", devices, perDevice, warmup+measure+5*time.Second)
	if err != nil {
		return row{}, fmt.Errorf("e2e fleet: %w", err)
	}
	fleetStopped := false
	defer func() {
		if !fleetStopped {
			_ = fleet.stop()
		}
	}()
	measureFrom := fleet.start.Add(warmup)
	if profile != "" {
		// A CPU profile over the first half of the measured window, then
		// a trace of a few seconds; both finish before the fleet stops.
		prefix := fmt.Sprintf("%s-%dx%d-edge", profile, brokers, devices)
		cpuFor, traceFor := int(measure.Seconds()/2), int(min(5, measure.Seconds()/4))
		go func() {
			if !tick.Sleep(ctx, time.Until(measureFrom)) {
				return
			}
			savePprof(edge.http, fmt.Sprintf("profile?seconds=%d", cpuFor), prefix+"-cpu.pprof")
			savePprof(edge.http, fmt.Sprintf("trace?seconds=%d", traceFor), prefix+"-trace.out")
		}()
	}

	// Consume once the bridge has forwarded (and so the topic exists); the
	// consumer starts at offset 0 and reads everything.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		m, err := scrape("http://" + edge.http + "/metrics")
		if err == nil && sumSeries(m, "tributary_bridge_forwarded_records_total") > 0 {
			break
		}
		if time.Now().After(deadline) {
			return row{}, fmt.Errorf("e2e: the bridge forwarded nothing within 20 s (scrape: %v):\n%s", err, edge.tail(8))
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddrs...), kgo.ConsumeTopics("sensors"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return row{}, fmt.Errorf("e2e consumer: %w", err)
	}
	defer cons.Close()
	// One sample per measured reading; the hops are worked out once every
	// PUBACK is in. The slice is allocated once (see e2eSample).
	var (
		mu        sync.Mutex
		samples   = make([]e2eSample, 0, devices*perDevice*int((measure+5*time.Second).Seconds()))
		consumed  atomic.Int64
		undecoded atomic.Int64
		fetchErr  atomic.Value
	)
	stopConsumer := pollInBackground(ctx, cons, func(fs kgo.Fetches, arrived time.Time) {
		fs.EachError(func(t string, p int32, err error) {
			fetchErr.Store(fmt.Errorf("fetch %s/%d: %w", t, p, err))
		})
		mu.Lock()
		defer mu.Unlock()
		fs.EachRecord(func(r *kgo.Record) {
			seq, ok := readingSeq(r.Value)
			if !ok {
				undecoded.Add(1)
				return
			}
			consumed.Add(1)
			dev, ok := fleet.deviceIndex(string(r.Key))
			if !ok {
				return
			}
			if sent, ok := fleet.sentAtIndex(dev, seq); ok && !sent.Before(measureFrom) {
				// The topic stamps each batch with the core's append time
				// (LogAppendTime): the split between the hops up to the
				// core's append and the consumer side.
				samples = append(samples, e2eSample{dev: int32(dev), seq: seq,
					sent: sent.UnixNano(), appended: r.Timestamp.UnixNano(), received: arrived.UnixNano()})
			}
		})
	})
	defer stopConsumer()

	// The edge's CPU time over the measured window: a figure the other
	// work on a shared machine disturbs far less than latency.
	var edgeCPU, coreCPU time.Duration
	coresCPU := func() (d time.Duration) {
		for _, c := range cores {
			d += c.cpuTime()
		}
		return d
	}
	if tick.Sleep(ctx, time.Until(measureFrom)) {
		edgeCPU, coreCPU = -edge.cpuTime(), -coresCPU()
	}
	end := fleet.start.Add(warmup + measure)
	if !tick.Sleep(ctx, time.Until(end)) {
		return row{}, fmt.Errorf("e2e: %w", ctx.Err())
	}
	edgeCPU, coreCPU = edgeCPU+edge.cpuTime(), coreCPU+coresCPU()
	elapsed := time.Since(fleet.start)
	ferr := fleet.stop()
	fleetStopped = true
	if ferr != nil {
		return row{}, fmt.Errorf("e2e fleet: %w", ferr)
	}
	sent, acked := fleet.sent.Load(), fleet.acked.Load()
	// Every acknowledged reading must reach the consumer (15 s at most).
	for deadline := time.Now().Add(15 * time.Second); consumed.Load() < acked; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			e, _ := fetchErr.Load().(error)
			return row{}, fmt.Errorf("e2e: consumed %d of %d acknowledged readings after 15 s (last fetch error: %v)", consumed.Load(), acked, e)
		}
	}
	stopConsumer()
	mu.Lock()
	defer mu.Unlock()
	if len(samples) == 0 {
		return row{}, fmt.Errorf("e2e: no readings in the measured window")
	}
	var lat, toCore, fromCore, toAck, ackToCore []time.Duration
	for _, s := range samples {
		lat = append(lat, time.Duration(s.received-s.sent))
		toCore = append(toCore, time.Duration(s.appended-s.sent))
		fromCore = append(fromCore, time.Duration(s.received-s.appended))
		// The edge's PUBACK splits the way to the core: its own ingest
		// (read, append, fsync, PUBACK) and then the bridge (woken by the
		// same fsync, so the two overlap and this hop can be ≤ 0).
		if acked, ok := fleet.ackedAtIndex(int(s.dev), s.seq); ok {
			toAck = append(toAck, time.Duration(acked.UnixNano()-s.sent))
			ackToCore = append(ackToCore, time.Duration(s.appended-acked.UnixNano()))
		}
	}
	for _, d := range [][]time.Duration{lat, toCore, fromCore, toAck, ackToCore} {
		slices.Sort(d)
	}
	printWorstSeconds(samples)
	rate := float64(acked) / elapsed.Seconds()
	fmt.Fprintf(os.Stderr, "   e2e hops (%d broker(s), %d devices) p50/p99 ms: device → PUBACK %.2f/%.2f, PUBACK → core append %.2f/%.2f, device → core append %.2f/%.2f, core append → consumer %.2f/%.2f\n",
		brokers, devices, pctMs(toAck, 0.5), pctMs(toAck, 0.99), pctMs(ackToCore, 0.5), pctMs(ackToCore, 0.99),
		pctMs(toCore, 0.5), pctMs(toCore, 0.99), pctMs(fromCore, 0.5), pctMs(fromCore, 0.99))
	fmt.Fprintf(os.Stderr, "   e2e (%d broker(s), %d devices): %d sent, %d acked (%.0f msgs/s), %d consumed, %d undecodable; %s over %d; edge CPU %.1f%% of a core (%.1f µs per reading), core broker(s) %.1f%% (%.1f µs)\n",
		brokers, devices, sent, acked, rate, consumed.Load(), undecoded.Load(), latencyCell(lat, rate), len(lat),
		100*edgeCPU.Seconds()/measure.Seconds(), float64(edgeCPU.Microseconds())/(rate*measure.Seconds()),
		100*coreCPU.Seconds()/measure.Seconds(), float64(coreCPU.Microseconds())/(rate*measure.Seconds()))
	return row{
		Name: fmt.Sprintf("e2e sensor→consumer latency, %d devices × %d QoS 1 msgs/s, edge → %s → franz-go (%d readings over %.0f s)",
			devices, perDevice, coreName, len(lat), measure.Seconds()),
		Ours: latencyCell(lat, rate) + fmt.Sprintf("; hops p50/p99: to edge PUBACK %.1f/%.1f ms, to core append %.1f/%.1f ms, append → consumer %.1f/%.1f ms",
			pctMs(toAck, 0.5), pctMs(toAck, 0.99), pctMs(toCore, 0.5), pctMs(toCore, 0.99), pctMs(fromCore, 0.5), pctMs(fromCore, 0.99)),
		Target: e2eTarget(brokers, devices),
	}, nil
}

// e2eSample is one measured reading of an e2e run. It holds no pointers
// and e2eRun allocates their slice once: the garbage collector neither
// scans nor copies it. (With a device name and three time.Time in each,
// the benchmark process's own collections grew to 170-260 ms mark phases
// late in a 10k msgs/s run, and the consumer beside them stalled: the
// worst seconds' p99 was the harness's.)
type e2eSample struct {
	dev                      int32 // the device's index in the fleet
	seq                      uint32
	sent, appended, received int64 // unix ns
}

// printWorstSeconds tells whether a tail is spread over the run or comes
// from a few bad moments: the p99 of each second of sends, the worst three
// first, with the part of it spent before the core's append.
func printWorstSeconds(samples []e2eSample) {
	type second struct{ total, toCore []time.Duration }
	bySecond := map[int64]*second{}
	for _, s := range samples {
		at := s.sent / int64(time.Second)
		b := bySecond[at]
		if b == nil {
			b = &second{}
			bySecond[at] = b
		}
		b.total = append(b.total, time.Duration(s.received-s.sent))
		b.toCore = append(b.toCore, time.Duration(s.appended-s.sent))
	}
	type worst struct {
		at         int64
		p99, toP99 float64
	}
	var ws []worst
	for at, b := range bySecond {
		slices.Sort(b.total)
		slices.Sort(b.toCore)
		ws = append(ws, worst{at, pctMs(b.total, 0.99), pctMs(b.toCore, 0.99)})
	}
	slices.SortFunc(ws, func(a, b worst) int { return cmp.Compare(b.p99, a.p99) })
	var cells []string
	for i := range min(3, len(ws)) {
		cells = append(cells, fmt.Sprintf("%s p99 %.1f ms (to core append %.1f)", time.Unix(ws[i].at, 0).UTC().Format("15:04:05"), ws[i].p99, ws[i].toP99))
	}
	med := ws[len(ws)/2]
	fmt.Fprintf(os.Stderr, "   e2e worst seconds: %s; median second p99 %.1f ms\n", strings.Join(cells, ", "), med.p99)
}
