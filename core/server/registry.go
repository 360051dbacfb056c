package server

import "github.com/prometheus/client_golang/prometheus"

// Registry is the broker's Prometheus registry (served on /metrics), for
// components running in the same process (the core's aggregations).
func (s *Server) Registry() prometheus.Registerer { return s.m.reg }
