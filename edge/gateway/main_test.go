package gateway

import (
	"os"
	"testing"

	"github.com/tributary-io/tributary/internal/testkit"
)

// Most of these tests wait on devices, fsyncs and a core; -short runs
// eight at a time.
func TestMain(m *testing.M) { os.Exit(testkit.WaitBoundParallel(m, 8)) }
