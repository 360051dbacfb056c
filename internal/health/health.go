// Package health holds what the core's and the edge's /healthz and /readyz
// share: the three statuses, how a finding makes a status worse, the
// readiness body, and the JSON answer with its HTTP code.
package health

import (
	"encoding/json"
	"net/http"
)

// Statuses, worst last.
const (
	StatusOK       = "ok"
	StatusDegraded = "degraded"
	StatusFailing  = "failing"
)

// Worse records a finding: the status becomes status unless it is already
// failing (degraded never hides failing), and reason joins the reasons.
func Worse(current *string, reasons *[]string, status, reason string) {
	if status == StatusFailing || *current == StatusOK {
		*current = status
	}
	*reasons = append(*reasons, reason)
}

// Readiness is the body of /readyz.
type Readiness struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons"`
}

// Code is the HTTP code of a status: 503 for failing, 200 otherwise.
func Code(status string) int {
	if status == StatusFailing {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}

// ReadyCode is the HTTP code of a readiness: 200 when ready, else 503.
func ReadyCode(r Readiness) int {
	if r.Ready {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// WriteJSON answers with v as indented JSON, never cached.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Serve answers /healthz on mux with what report returns, its status
// picking the HTTP code, and /readyz with ready's answer.
func Serve(mux *http.ServeMux, report func() (status string, body any), ready func() Readiness) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		status, body := report()
		WriteJSON(w, Code(status), body)
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := ready()
		WriteJSON(w, ReadyCode(r), r)
	})
}
