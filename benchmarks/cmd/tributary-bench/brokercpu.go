package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/google/pprof/profile"
)

// The Kafka brokers of the core section run in the benchmark's own
// process, beside the franz-go clients that drive them. Each broker is
// started under a pprof label (brokerLabel = its name); the goroutines it
// starts inherit the label, so a CPU profile of a phase tells the broker's
// own CPU time apart from the client's. The runtime's background work
// (GC marking, the scheduler) carries no label and counts as neither.
const brokerLabel = "broker"

// startLabelled runs start with the broker label set to name.
func startLabelled(name string, start func()) {
	pprof.Do(context.Background(), pprof.Labels(brokerLabel, name), func(context.Context) { start() })
}

// phaseCPU is the CPU a phase used: the named broker's goroutines and the
// whole process, in seconds.
type phaseCPU struct {
	broker, total float64
}

// share is the broker's part of the phase's CPU.
func (c phaseCPU) share() float64 {
	if c.total == 0 {
		return 0
	}
	return c.broker / c.total
}

// measurePhase CPU-profiles one phase of system; stop ends the profile and
// returns what it counted. With --core-cpuprofile the Tributary phases'
// profiles are also written to files. A profile already running elsewhere
// leaves the phase unmeasured (zero).
func measurePhase(system, phase string) (stop func() phaseCPU) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		fmt.Fprintln(os.Stderr, "   cpu profile:", err)
		return func() phaseCPU { return phaseCPU{} }
	}
	return func() phaseCPU {
		pprof.StopCPUProfile()
		if *coreProfile != "" && system == "tributary" {
			name := fmt.Sprintf("%s-%s.pprof", *coreProfile, phase)
			if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "   cpu profile:", err)
			}
		}
		cpu, err := brokerCPU(&buf, system)
		if err != nil {
			fmt.Fprintln(os.Stderr, "   cpu profile:", err)
		}
		return cpu
	}
}

// brokerCPU sums a CPU profile's samples: those labelled with system, and
// all of them.
func brokerCPU(r *bytes.Buffer, system string) (phaseCPU, error) {
	p, err := profile.Parse(r)
	if err != nil {
		return phaseCPU{}, fmt.Errorf("parse cpu profile: %w", err)
	}
	vi := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			vi = i
		}
	}
	if vi < 0 {
		return phaseCPU{}, fmt.Errorf("cpu profile has no cpu/nanoseconds samples")
	}
	var c phaseCPU
	for _, s := range p.Sample {
		secs := float64(s.Value[vi]) / 1e9
		c.total += secs
		if l := s.Label[brokerLabel]; len(l) > 0 && l[0] == system {
			c.broker += secs
		}
	}
	return c, nil
}

// cpuPerRecord adds up the phases of one system: the broker's CPU, the
// process's, and the records they moved.
type cpuPerRecord struct {
	cpu     phaseCPU
	records int
}

func (c *cpuPerRecord) add(p phaseCPU, records int) {
	c.cpu.broker += p.broker
	c.cpu.total += p.total
	c.records += records
}

// perMillion is the broker's CPU per million records, in milliseconds.
func (c cpuPerRecord) perMillion() float64 {
	if c.records == 0 {
		return 0
	}
	return c.cpu.broker * 1e3 / float64(c.records) * 1e6
}

// cpuRow compares what the two brokers' own goroutines cost per record in
// a phase (Tributary first, kfake second); the ratio is kfake's / ours.
func cpuRow(phase string, c [2]cpuPerRecord) row {
	r := row{
		Name:   fmt.Sprintf("core broker CPU per million records, %s (profiled; in brackets the broker's share of the process's CPU; ratio = kfake / ours)", phase),
		Ours:   fmt.Sprintf("%.0f ms (%.0f%%)", c[0].perMillion(), 100*c[0].cpu.share()),
		Peer:   fmt.Sprintf("kfake: %.0f ms (%.0f%%)", c[1].perMillion(), 100*c[1].cpu.share()),
		Target: "reported",
	}
	if c[0].perMillion() > 0 {
		r.Ratio = c[1].perMillion() / c[0].perMillion()
	}
	return r
}
