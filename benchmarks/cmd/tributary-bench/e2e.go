package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// endToEnd measures sensor → consumer latency through the real binaries:
// one tributary-core broker, one tributary-edge bridged to it, 1,000 MQTT
// devices each publishing 10 QoS 1 readings/s (10k msgs/s) stamped with the
// wall clock, and a franz-go consumer reading the core's "sensors" topic.
// Latency = consumer receive time − reading ts, same machine and clock; ts
// is whole milliseconds, so figures read up to 1 ms high. Readings sent
// during the first warm-up seconds (connections, topic creation) are not
// counted.
func endToEnd(dir string, quick bool) ([]row, error) {
	const devices, perDevice = 1000, 10
	warmup, measure := 3*time.Second, 30*time.Second
	if quick {
		measure = 8 * time.Second
	}
	coreBin, err := productBin(dir, "tributary-core")
	if err != nil {
		return nil, err
	}
	edgeBin, err := productBin(dir, "tributary-edge")
	if err != nil {
		return nil, err
	}
	base, err := os.MkdirTemp(dir, "e2e-bench-")
	if err != nil {
		return nil, fmt.Errorf("e2e dir: %w", err)
	}
	defer os.RemoveAll(base)

	given := map[int]bool{}
	kafkaAddr, err := reservePort(given)
	if err != nil {
		return nil, err
	}
	httpAddr, err := reservePort(given)
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "   e2e: starting core and bridged edge")
	core, err := startCore(coreBin, base+"/core", kafkaAddr, httpAddr)
	if err != nil {
		return nil, err
	}
	defer core.kill()
	edge, err := startBridgedEdge(edgeBin, base+"/edge", []string{kafkaAddr})
	if err != nil {
		return nil, err
	}
	defer edge.kill()

	fmt.Fprintf(os.Stderr, "   e2e: %d devices × %d QoS 1 msgs/s, %v warm-up + %v measured\n", devices, perDevice, warmup, measure)
	fleet, err := startPacedFleet(edge.mqtt, "e2e", devices, perDevice)
	if err != nil {
		return nil, fmt.Errorf("e2e fleet: %w", err)
	}
	fleetStopped := false
	defer func() {
		if !fleetStopped {
			_ = fleet.stop()
		}
	}()
	measureFrom := fleet.start.Add(warmup).UnixMilli()

	// The bridge creates the core topic on its first forward; consume once
	// it has (the consumer then starts at offset 0 and reads everything).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		m, err := scrape("http://" + edge.http + "/metrics")
		if err == nil && sumSeries(m, "tributary_bridge_forwarded_records_total") > 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("e2e: the bridge forwarded nothing within 20 s (scrape: %v):\n%s", err, edge.tail(8))
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.ConsumeTopics("sensors"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("e2e consumer: %w", err)
	}
	defer cons.Close()
	ctx, cancel := context.WithTimeout(context.Background(), warmup+measure+60*time.Second)
	defer cancel()
	var (
		mu        sync.Mutex
		lat       []time.Duration
		consumed  atomic.Int64
		undecoded atomic.Int64
		fetchErr  atomic.Value
	)
	cctx, stopConsumer := context.WithCancel(ctx)
	var cwg sync.WaitGroup
	cwg.Add(1)
	go func() {
		defer cwg.Done()
		for cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			now := time.Now()
			fs.EachError(func(t string, p int32, err error) {
				if cctx.Err() == nil {
					fetchErr.Store(fmt.Errorf("fetch %s/%d: %w", t, p, err))
				}
			})
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				ts, ok := readingTs(r.Value)
				if !ok {
					undecoded.Add(1)
					return
				}
				consumed.Add(1)
				if ts >= measureFrom {
					lat = append(lat, now.Sub(time.UnixMilli(ts)))
				}
			})
			mu.Unlock()
		}
	}()
	defer func() { stopConsumer(); cwg.Wait() }()

	end := fleet.start.Add(warmup + measure)
	if !sleepCtx(ctx, time.Until(end)) {
		return nil, fmt.Errorf("e2e: %w", ctx.Err())
	}
	elapsed := time.Since(fleet.start)
	ferr := fleet.stop()
	fleetStopped = true
	if ferr != nil {
		return nil, fmt.Errorf("e2e fleet: %w", ferr)
	}
	sent, acked := fleet.sent.Load(), fleet.acked.Load()
	// Every acknowledged reading must reach the consumer (15 s at most).
	for deadline := time.Now().Add(15 * time.Second); consumed.Load() < acked; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			e, _ := fetchErr.Load().(error)
			return nil, fmt.Errorf("e2e: consumed %d of %d acknowledged readings after 15 s (last fetch error: %v)", consumed.Load(), acked, e)
		}
	}
	stopConsumer()
	cwg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		return nil, fmt.Errorf("e2e: no readings in the measured window")
	}
	slices.Sort(lat)
	rate := float64(acked) / elapsed.Seconds()
	fmt.Fprintf(os.Stderr, "   e2e: %d sent, %d acked (%.0f msgs/s), %d consumed, %d undecodable; p50 %.2f ms p99 %.2f ms over %d\n",
		sent, acked, rate, consumed.Load(), undecoded.Load(), pctMs(lat, 0.5), pctMs(lat, 0.99), len(lat))
	return []row{{
		Name: fmt.Sprintf("e2e sensor→consumer latency, %d devices × %d QoS 1 msgs/s, edge → 1 core broker → franz-go (%d readings over %.0f s; ts whole ms)",
			devices, perDevice, len(lat), measure.Seconds()),
		Ours:   fmt.Sprintf("p50 %.1f ms, p99 %.1f ms (%.0f msgs/s acked)", pctMs(lat, 0.5), pctMs(lat, 0.99), rate),
		Target: "p99 reported",
	}}, nil
}
