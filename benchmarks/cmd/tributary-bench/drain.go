package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// bridgeDrain measures how fast the bridge of the real tributary-edge
// binary drains a backlog into a real tributary-core while live ingest
// goes on, as bridge/bench_test.go BenchmarkBacklogDrain does in-process.
//
//  1. The edge runs bridged to a core address nobody listens on yet, and
//     the pipelined MQTT generator (mqttLoad: 100 connections, QoS 1,
//     100 B CBOR readings) stores the backlog as fast as the edge takes it:
//     600k readings (60 s of the 10k msgs/s ingest), 300k with --quick.
//  2. 1,000 devices start publishing 10 QoS 1 readings/s each (10k msgs/s).
//  3. The core starts. From the moment its /healthz answers, the edge's
//     /metrics is read every 20 ms until every partition's bridge cursor has
//     passed the partition's end at that moment. Drain rate = records
//     forwarded in that time (backlog and live) / time; ratio = drain rate /
//     10k msgs/s. The bridge retries every 50–250 ms while the core is down
//     (backoff_max 250 ms instead of the default 30 s), so at most that much
//     reconnect delay is inside the time.
func bridgeDrain(dir string, quick bool) ([]row, error) {
	const devices, perDevice, ingestRate = 1000, 10, 10_000
	conns, per := 100, 6000
	if quick {
		per = 3000
	}
	coreBin, err := productBin(dir, "tributary-core")
	if err != nil {
		return nil, err
	}
	edgeBin, err := productBin(dir, "tributary-edge")
	if err != nil {
		return nil, err
	}
	base, cleanup, err := scratchDir(dir, "drain-bench-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	addrs, err := reserveAddrs(2)
	if err != nil {
		return nil, err
	}
	kafkaAddr, httpAddr := addrs[0], addrs[1]
	edge, err := startBridgedEdge(edgeBin, filepath.Join(base, "edge"), []string{kafkaAddr})
	if err != nil {
		return nil, err
	}
	defer edge.kill()
	metricsURL := "http://" + edge.http + "/metrics"

	fmt.Fprintf(os.Stderr, "   drain: storing a %d-reading backlog with the core down\n", conns*per)
	buildRate, err := mqttLoad(edge.mqtt, conns, per, 1)
	if err != nil {
		return nil, fmt.Errorf("drain: build backlog: %w", err)
	}
	fmt.Fprintf(os.Stderr, "   drain: backlog stored at %.0f msgs/s; starting %d devices × %d msgs/s of live ingest\n", buildRate, devices, perDevice)
	fleet, err := startPacedFleet(edge.mqtt, "live", devices, perDevice)
	if err != nil {
		return nil, fmt.Errorf("drain fleet: %w", err)
	}
	fleetStopped := false
	defer func() {
		if !fleetStopped {
			_ = fleet.stop()
		}
	}()
	time.Sleep(time.Second)

	fmt.Fprintln(os.Stderr, "   drain: starting the core")
	core, err := startCore(coreBin, filepath.Join(base, "core"), kafkaAddr, httpAddr)
	if err != nil {
		return nil, err
	}
	defer core.kill()
	t0 := time.Now()
	acked0 := fleet.acked.Load()
	m0, err := scrape(metricsURL)
	if err != nil {
		return nil, err
	}
	// Partition ends when the core came up: cursor + backlog, per
	// partition (series labels).
	ends := map[string]float64{}
	var cursor0, backlog0 float64
	for k, v := range series(m0, "tributary_bridge_cursor_offset") {
		labels := strings.TrimPrefix(k, "tributary_bridge_cursor_offset")
		b := m0["tributary_bridge_backlog_records"+labels]
		ends[labels] = v + b
		cursor0 += v
		backlog0 += b
	}
	if backlog0 < float64(conns*per) {
		return nil, fmt.Errorf("drain: the edge reports a backlog of %.0f records, want at least %d (partitions %v)", backlog0, conns*per, ends)
	}
	var cursor1 float64
	for deadline := t0.Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		m, err := scrape(metricsURL)
		if err != nil {
			return nil, err
		}
		past := true
		cursor1 = 0
		for labels, end := range ends {
			c := m["tributary_bridge_cursor_offset"+labels]
			cursor1 += c
			past = past && c >= end
		}
		if past {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("drain: backlog not drained within 2 min: %.0f of %.0f forwarded:\n%s", cursor1-cursor0, backlog0, edge.tail(8))
		}
	}
	took := time.Since(t0)
	ingest := float64(fleet.acked.Load()-acked0) / took.Seconds()
	ferr := fleet.stop()
	fleetStopped = true
	if ferr != nil {
		return nil, fmt.Errorf("drain fleet: %w", ferr)
	}
	drained := cursor1 - cursor0
	rate := drained / took.Seconds()
	fmt.Fprintf(os.Stderr, "   drain: %.0f records (backlog %.0f) forwarded in %v: %.0f rec/s, live ingest %.0f msgs/s meanwhile\n",
		drained, backlog0, took.Round(time.Millisecond), rate, ingest)
	return []row{{
		Name: fmt.Sprintf("bridge backlog drain, %dk-reading backlog stored with the core down, then 1 core broker started under %d devices × %d QoS 1 msgs/s (real binaries; ratio = drain rate / 10k msgs/s ingest)",
			int(backlog0)/1000, devices, perDevice),
		Ours:   fmt.Sprintf("%.0f rec/s (%.0f records in %.2f s; live ingest %.0f msgs/s)", rate, drained, took.Seconds(), ingest),
		Ratio:  rate / ingestRate,
		Target: "≥ 10×",
	}}, nil
}
