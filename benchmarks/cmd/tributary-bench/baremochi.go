package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveBareMochi runs mochi-mqtt the way tributary-edge embeds it (same
// capabilities and buffer sizes) but with an allow-all hook and nothing
// else: no decoding, no storage, no metrics of ours. It is the floor any
// gateway built on mochi pays per connection, measured beside the edge in
// the RSS row. The harness runs it as a child process of itself
// (-serve-bare-mochi), so its RSS is its own. It is upstream mochi-mqtt,
// unpatched: this module does not carry the root module's replace of it
// with third_party/mochi.
func serveBareMochi(addr, httpAddr string) error {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 64
	caps.ReceiveMaximum = 32
	caps.MaximumInflight = 64
	srv := mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetWriteBufferSize: 2048,
		ClientNetReadBufferSize:  2048,
		Logger:                   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return fmt.Errorf("add hook: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		return fmt.Errorf("add listener: %w", err)
	}
	hln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler()) // Go runtime memory, as the edge reports it
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(hln) }()
	if err := srv.Serve(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = hs.Close()
	return srv.Close()
}
