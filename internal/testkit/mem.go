package testkit

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// The ingest benchmarks (edge/gateway's and tributary-bench's) report what
// the broker under load used; these read it and answer 0 when they cannot.

// PeakRSS is process pid's high-water resident set (VmHWM) in MB.
func PeakRSS(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// GoMem is the Go heap and stack in use (MB) of the role whose HTTP
// listener is at addr, from its /metrics page.
func GoMem(addr string) (heap, stack float64) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "go_memstats_heap_inuse_bytes":
			heap = v / (1 << 20)
		case "go_memstats_stack_inuse_bytes":
			stack = v / (1 << 20)
		}
	}
	return heap, stack
}
