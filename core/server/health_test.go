package server

import (
	"encoding/json"
	"net/http"
	"testing"
)

func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", url, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode
}

// TestHealthAndReadiness: a fresh broker with a topic is ok and ready, and
// says so as JSON with a status and an (empty) list of reasons.
func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig(t.TempDir()))
	createTopic(t, newClient(t, srv.Addr()), "hz", 2, nil)
	var h Health
	if code := getJSON(t, "http://"+srv.HTTPAddr()+"/healthz", &h); code != http.StatusOK || h.Status != StatusOK || h.Reasons == nil || len(h.Reasons) != 0 {
		t.Fatalf("/healthz %d: %+v", code, h)
	}
	var r Readiness
	if code := getJSON(t, "http://"+srv.HTTPAddr()+"/readyz", &r); code != http.StatusOK || !r.Ready {
		t.Fatalf("/readyz %d: %+v", code, r)
	}
	parts := srv.Partitions()
	if len(parts) != 2 || parts[0].Topic != "hz" || !parts[0].Leading || parts[1].Partition != 1 {
		t.Fatalf("partitions: %+v", parts)
	}
}
