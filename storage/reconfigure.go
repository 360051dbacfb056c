package storage

import "fmt"

// Reconfigure replaces the log's configuration at run time. Appends,
// retention and compaction see the new values from their next run; segment
// and index settings apply to segments created from now on, and a changed
// fsync policy restarts the syncer's timer.
func (l *Log) Reconfigure(cfg LogConfig) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("reconfigure %s: %w", l.dir, err)
	}
	cfg = cfg.WithDefaults()
	l.mu.Lock()
	// Recorded before the policy changes: compaction may run at once.
	if err := l.noteSparse(cfg.Cleanup); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("reconfigure %s: %w", l.dir, err)
	}
	l.cfg = cfg
	l.mu.Unlock()
	select {
	case l.reconfigured <- struct{}{}:
	default: // a wake-up is already pending; it reads the newest config
	}
	return nil
}

// Reconfigure replaces a topic's configuration overrides (zero fields take
// the defaults, as in Create), applies them to every partition log and
// persists them, so the change holds across restarts.
func (t *Topics) Reconfigure(name string, override LogConfig) error {
	if err := override.Validate(); err != nil {
		return fmt.Errorf("reconfigure topic %s: %w", name, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tp, err := t.writableLocked(name)
	if err != nil {
		return err
	}
	cfg := t.merge(override)
	old := tp.override
	tp.override = override
	if err := t.persist(tp); err != nil {
		tp.override = old
		return fmt.Errorf("reconfigure topic %s: %w", name, err)
	}
	tp.info.Config = cfg
	for _, l := range tp.openLogs() {
		if err := l.Reconfigure(cfg); err != nil {
			return fmt.Errorf("reconfigure topic %s: %w", name, err)
		}
	}
	t.logger.Info("reconfigured topic", "topic", name)
	return nil
}

// Override is the topic's configuration as set (zero fields are defaults).
func (t *Topics) Override(name string) (LogConfig, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tp, ok := t.topics[name]
	if !ok {
		return LogConfig{}, false
	}
	return tp.override, true
}
