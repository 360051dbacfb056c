// Package fleet runs many simulated devices at once: it names and seeds
// them, stops them by duration or count, drains them within a bound, shows
// progress, and assembles the run summary and sequence state.
package fleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/firmware-sim/device"
	"github.com/tributary-io/tributary/firmware-sim/summary"
)

// Config describes a fleet run.
type Config struct {
	Devices  int
	IDPrefix string // device ids are IDPrefix + zero-padded index
	IDStart  int    // index of the first device
	// Device is the template every device starts from; ID, FirstSeq,
	// Username, Rand and Logger are filled per device.
	Device device.Config
	Seed   int64
	// Duration stops generation after this long; 0 relies on Device.Count.
	Duration time.Duration
	// DrainTimeout bounds the wait for queues and in-flight publishes after
	// generation stops; what is still pending then is abandoned (and
	// reported as such).
	DrainTimeout time.Duration
	// Ramp spreads device start-up over this long, so a large fleet does
	// not hit the broker with every CONNECT in the same millisecond.
	Ramp time.Duration
	// State, if set, supplies each device's first sequence number and is
	// updated with the next one when the run ends.
	State *summary.State
	// Progress receives the live progress line; nil disables it.
	Progress io.Writer
	// Terminal redraws one line in place; otherwise lines are appended.
	Terminal      bool
	ProgressEvery time.Duration
	// Metrics, if set, gets the fleet's live counters registered on it.
	Metrics prometheus.Registerer
	Logger  *slog.Logger
}

// DeviceID names device index i.
func (c Config) DeviceID(i int) string { return fmt.Sprintf("%s%06d", c.IDPrefix, c.IDStart+i) }

// Run runs the fleet. Cancelling ctx stops generation early (as Duration
// does); the drain that follows is still bounded by DrainTimeout.
func Run(ctx context.Context, cfg Config) (*summary.Summary, error) {
	if cfg.Devices <= 0 {
		return nil, fmt.Errorf("fleet: %d devices: want at least 1", cfg.Devices)
	}
	if cfg.Duration <= 0 && cfg.Device.Count == 0 {
		return nil, fmt.Errorf("fleet: neither a duration nor a count: the run would never end")
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
		if !cfg.Terminal {
			cfg.ProgressEvery = 5 * time.Second
		}
	}
	devs := make([]*device.Device, cfg.Devices)
	for i := range devs {
		dc := cfg.Device
		dc.ID = cfg.DeviceID(i)
		if cfg.State != nil {
			dc.FirstSeq = cfg.State.Next[dc.ID]
		}
		if dc.Password != "" && dc.Username == "" {
			dc.Username = dc.ID
		}
		// Each device has its own stream of randomness derived from the
		// seed, so values do not depend on goroutine scheduling.
		dc.Rand = rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.IDStart+i)))
		dc.Logger = cfg.Logger
		devs[i] = device.New(dc)
	}

	if cfg.Metrics != nil {
		if err := registerMetrics(cfg.Metrics, devs); err != nil {
			return nil, fmt.Errorf("fleet: register metrics: %w", err)
		}
	}

	start := time.Now()
	hard, abandon := context.WithCancel(context.Background())
	defer abandon()
	stop := make(chan struct{})
	results := make([]summary.Device, len(devs))
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cfg.Ramp > 0 {
				t := time.NewTimer(cfg.Ramp * time.Duration(i) / time.Duration(len(devs)))
				select {
				case <-t.C:
				case <-stop:
					t.Stop()
				}
			}
			results[i] = d.Run(hard, stop)
		}()
	}
	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()

	var progressWG sync.WaitGroup
	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		progressWG.Add(1)
		go func() {
			defer progressWG.Done()
			showProgress(cfg, devs, start, progressDone)
		}()
	}

	var durC <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		durC = t.C
	}
	select {
	case <-allDone: // every device reached its count and drained
	case <-durC:
	case <-ctx.Done():
	}
	close(stop)
	drain := time.NewTimer(cfg.DrainTimeout)
	defer drain.Stop()
	select {
	case <-allDone:
	case <-drain.C:
		cfg.Logger.Warn("drain timeout: abandoning pending publishes", "timeout", cfg.DrainTimeout)
		abandon()
		<-allDone
	}
	close(progressDone)
	progressWG.Wait()

	s := &summary.Summary{
		Start: start.UTC(), End: time.Now().UTC(), Broker: cfg.Device.Broker, Stream: cfg.Device.Stream,
		Encoding: string(cfg.Device.Encoding), QoS: cfg.Device.QoS, Seed: cfg.Seed, Devices: results,
	}
	slices.SortFunc(s.Devices, func(a, b summary.Device) int { return strings.Compare(a.ID, b.ID) })
	s.Total()
	if cfg.State != nil {
		for _, d := range s.Devices {
			cfg.State.Next[d.ID] = d.NextSeq
		}
	}
	return s, nil
}

// showProgress prints the progress line until done is closed.
func showProgress(cfg Config, devs []*device.Device, start time.Time, done <-chan struct{}) {
	tick := time.NewTicker(cfg.ProgressEvery)
	defer tick.Stop()
	var lastAcked uint64
	last := start
	for {
		select {
		case <-done:
			if cfg.Terminal {
				fmt.Fprintln(cfg.Progress)
			}
			return
		case now := <-tick.C:
			p := Snapshot(devs)
			rate := float64(p.Acked-lastAcked) / now.Sub(last).Seconds()
			lastAcked, last = p.Acked, now
			line := fmt.Sprintf("%5.0fs connected %d/%d  sent %d  acked %d  queued %d  dropped %d  rate %.0f/s",
				now.Sub(start).Seconds(), p.Connected, len(devs), p.Sent, p.Acked, p.Queued, p.Dropped, rate)
			if cfg.Terminal {
				fmt.Fprint(cfg.Progress, "\r\033[K"+line)
			} else {
				fmt.Fprintln(cfg.Progress, line)
			}
		}
	}
}

// Progress is a fleet-wide snapshot of the live counters.
type Progress struct {
	Connected                       int
	Generated, Sent, Acked, Dropped uint64
	Queued                          int64
}

// Snapshot adds up the devices' live counters.
func Snapshot(devs []*device.Device) Progress {
	var p Progress
	for _, d := range devs {
		if d.Stats.Connected.Load() {
			p.Connected++
		}
		p.Generated += d.Stats.Generated.Load()
		p.Sent += d.Stats.Sent.Load()
		p.Acked += d.Stats.Acked.Load()
		p.Dropped += d.Stats.Dropped.Load()
		p.Queued += d.Stats.Queued.Load()
	}
	return p
}

// PrintSummary writes the end-of-run summary for people.
func PrintSummary(w io.Writer, s *summary.Summary) {
	t := s.Totals
	secs := s.End.Sub(s.Start).Seconds()
	fmt.Fprintf(w, "run: %d devices, %.1fs, %s QoS %d to %s (stream %s)\n", t.Devices, secs, s.Encoding, s.QoS, s.Broker, s.Stream)
	fmt.Fprintf(w, "  generated %d  sent %d  acked %d  resent %d  dropped(offline queue) %d  unsent %d  unacked %d  bad-sent %d\n",
		t.Generated, t.Sent, t.Acked, t.Resent, t.Dropped, t.Unsent, t.Unacked, t.BadSent)
	if secs > 0 {
		fmt.Fprintf(w, "  acked rate %.0f readings/s; %d readings must reach the stream\n", float64(t.Acked)/secs, t.Required)
	}
}
