package health

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A degraded finding never hides a failing one, and every reason is kept.
func TestWorseAndCodes(t *testing.T) {
	t.Parallel()
	status, reasons := StatusOK, []string{}
	Worse(&status, &reasons, StatusDegraded, "a")
	if status != StatusDegraded || Code(status) != http.StatusOK {
		t.Fatalf("after a degraded finding: %s, code %d", status, Code(status))
	}
	Worse(&status, &reasons, StatusFailing, "b")
	Worse(&status, &reasons, StatusDegraded, "c")
	if status != StatusFailing || Code(status) != http.StatusServiceUnavailable || strings.Join(reasons, ",") != "a,b,c" {
		t.Fatalf("after failing then degraded: %s %v, code %d", status, reasons, Code(status))
	}
	if ReadyCode(Readiness{Ready: true}) != http.StatusOK || ReadyCode(Readiness{}) != http.StatusServiceUnavailable {
		t.Fatal("readiness codes")
	}
	rec := httptest.NewRecorder()
	WriteJSON(rec, http.StatusServiceUnavailable, Readiness{Reasons: []string{"x<y"}})
	if rec.Code != 503 || rec.Header().Get("Cache-Control") != "no-store" || !strings.Contains(rec.Body.String(), `"x<y"`) {
		t.Fatalf("WriteJSON: %d %v %q", rec.Code, rec.Header(), rec.Body.String())
	}
}
