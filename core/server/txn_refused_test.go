package server

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Until transactions are served, a transactional producer is refused at
// once with a fatal error saying why (not COORDINATOR_NOT_AVAILABLE, which
// clients retry until their timeout): kgo and librdkafka.
func TestTransactionsRefusedFast(t *testing.T) {
	srv := startServer(t, testConfig(t.TempDir()))
	cl := newClient(t, srv.Addr(), kgo.TransactionalID("tx"), kgo.DefaultProduceTopic("t"), kgo.AllowAutoTopicCreation())
	start := time.Now()
	err := cl.BeginTransaction()
	if err == nil {
		err = cl.ProduceSync(ctxT(t), &kgo.Record{Value: []byte("v")}).FirstErr()
	}
	if !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) || time.Since(start) > 5*time.Second {
		t.Fatalf("kgo transactional produce: %v after %v", err, time.Since(start))
	}
	t.Run("librdkafka", func(t *testing.T) {
		py := "/usr/bin/python3"
		if _, err := os.Stat(py); err != nil {
			py = "python3"
		}
		out := runClient(t, []string{py, "-c", "import confluent_kafka"}, py, "testdata/confluent_init_transactions.py", srv.Addr())
		t.Logf("confluent-kafka: %s", out)
		if !strings.Contains(out, "init failed after 0.") || !strings.Contains(out, errNoTransactions) {
			t.Fatalf("init_transactions: %s", out)
		}
	})
}
