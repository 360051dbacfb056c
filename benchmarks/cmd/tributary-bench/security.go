package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	coreserver "github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/internal/devcert"
)

// securityBench measures what TLS costs on one core broker with two
// listeners, PLAINTEXT and SASL_SSL (SCRAM-SHA-512), in the same run:
// produce (100 B, lz4, acks=1) and consume through each, alternating, best
// of reps; and full SCRAM-SHA-512 logins per second (4096 iterations; the
// client's PBKDF2 runs on the same two cores as the broker's checks).
func securityBench(dir string, quick bool) ([]row, error) {
	n, reps, limit, loginFor := 1_000_000, 4, 15*time.Second, 5*time.Second
	if quick {
		n, reps, limit, loginFor = 300_000, 2, 5*time.Second, 2*time.Second
	}
	root, err := os.MkdirTemp(dir, "security-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	ca, err := devcert.NewCA("bench CA")
	if err != nil {
		return nil, err
	}
	leaf, err := ca.Server("bench-core")
	if err != nil {
		return nil, err
	}
	certFile, keyFile, err := leaf.WriteFiles(root, "core")
	if err != nil {
		return nil, err
	}
	cfg := coreserver.DefaultConfig()
	cfg.DataDir = filepath.Join(root, "data")
	cfg.HTTPAddr = ""
	cfg.DefaultPartitions = benchPartitions
	cfg.Listeners = []coreserver.ListenerConfig{
		{Name: "PLAINTEXT", Protocol: coreserver.ProtocolPlaintext, Addr: "127.0.0.1:0"},
		{Name: "SASL_SSL", Protocol: coreserver.ProtocolSASLSSL, Addr: "127.0.0.1:0"},
		{Name: "SASL_PLAINTEXT", Protocol: coreserver.ProtocolSASLPlaintext, Addr: "127.0.0.1:0"},
	}
	cfg.Security = coreserver.SecurityConfig{
		TLS:   coreserver.TLSConfig{CertFile: certFile, KeyFile: keyFile},
		Users: []coreserver.UserConfig{{Name: "bench", Password: "bench-secret"}},
		// ACLs are evaluated on every request, as in production; the
		// anonymous plaintext client is allowed by an explicit binding.
		SuperUsers: []string{"User:bench"},
		ACLs:       []string{"allow User:ANONYMOUS 127.0.0.1 all topic *", "allow User:ANONYMOUS 127.0.0.1 all cluster kafka-cluster"},
	}
	srv, err := coreserver.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		return nil, fmt.Errorf("start core: %w", err)
	}
	defer srv.Close()
	plainAddr, tlsAddr := srv.ListenerAddr("PLAINTEXT"), srv.ListenerAddr("SASL_SSL")
	secure := []kgo.Opt{
		kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: "bench", Pass: "bench-secret"}.AsSha512Mechanism()),
	}
	ctx := context.Background()
	var prod, cons [2]float64 // [plaintext, tls]
	systems := []struct {
		addr string
		opts []kgo.Opt
	}{{plainAddr, nil}, {tlsAddr, secure}}
	for rep := 0; rep < reps; rep++ {
		// Alternate which goes first so warm-up and background load do
		// not always favour the same side.
		for _, i := range [][2]int{{0, 1}, {1, 0}}[rep%2] {
			sys := systems[i]
			name := [2]string{"plaintext", "tls"}[i]
			topic := fmt.Sprintf("sec-%s-%d", name, rep)
			r, _, err := kafkaProduce(ctx, sys.addr, topic, 100, false, n, limit, "produce 100 B over "+name, sys.opts...)
			if err != nil {
				return nil, fmt.Errorf("produce over %s: %w", name, err)
			}
			prod[i] = max(prod[i], r)
			c, _, err := kafkaConsume(ctx, sys.addr, topic, limit, "consume 100 B over "+name, sys.opts...)
			if err != nil {
				return nil, fmt.Errorf("consume over %s: %w", name, err)
			}
			cons[i] = max(cons[i], c)
		}
	}
	logins, err := scramLogins(ctx, srv.ListenerAddr("SASL_PLAINTEXT"), loginFor)
	if err != nil {
		return nil, err
	}
	return []row{
		{Name: fmt.Sprintf("core produce 100 B, acks=1, lz4 over SASL_SSL vs PLAINTEXT (same broker, best of %d)", reps),
			Ours: fmt.Sprintf("%.0f rec/s", prod[1]), Peer: fmt.Sprintf("%.0f rec/s", prod[0]), Ratio: prod[1] / prod[0], Target: "≥ 0.7×"},
		{Name: fmt.Sprintf("core consume 100 B over SASL_SSL vs PLAINTEXT (same broker, best of %d)", reps),
			Ours: fmt.Sprintf("%.0f rec/s", cons[1]), Peer: fmt.Sprintf("%.0f rec/s", cons[0]), Ratio: cons[1] / cons[0], Target: "≥ 0.7×"},
		{Name: "core SCRAM-SHA-512 logins (4096 iterations, 4 clients; client PBKDF2 on the same cores)",
			Ours: fmt.Sprintf("%.0f logins/s", logins)},
	}, nil
}

// scramLogins runs complete SaslHandshake + SaslAuthenticate exchanges on
// fresh connections from 4 goroutines for d and returns logins per second.
func scramLogins(ctx context.Context, addr string, d time.Duration) (float64, error) {
	mech := scram.Auth{User: "bench", Pass: "bench-secret"}.AsSha512Mechanism()
	var done atomic.Int64
	var firstErr atomic.Pointer[error]
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := scramLogin(ctx, addr, mech); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, fmt.Errorf("scram login: %w", *p)
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

// scramLogin is one SaslHandshake v1 and SaslAuthenticate exchange on a
// new connection.
func scramLogin(ctx context.Context, addr string, mech sasl.Mechanism) error {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("bench"))
	corr := int32(0)
	do := func(req kmsg.Request, resp kmsg.Response) error {
		corr++
		if _, err := nc.Write(f.AppendRequest(nil, req, corr)); err != nil {
			return err
		}
		var sz [4]byte
		if _, err := io.ReadFull(nc, sz[:]); err != nil {
			return err
		}
		b := make([]byte, binary.BigEndian.Uint32(sz[:]))
		if _, err := io.ReadFull(nc, b); err != nil {
			return err
		}
		resp.SetVersion(req.GetVersion())
		return resp.ReadFrom(b[4:])
	}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, mech.Name()
	if err := do(hs, kmsg.NewPtrSASLHandshakeResponse()); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	sess, tok, err := mech.Authenticate(ctx, "127.0.0.1")
	if err != nil {
		return err
	}
	for {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version, req.SASLAuthBytes = 1, tok
		resp := kmsg.NewPtrSASLAuthenticateResponse()
		if err := do(req, resp); err != nil {
			return fmt.Errorf("authenticate: %w", err)
		}
		if resp.ErrorCode != 0 {
			return fmt.Errorf("authenticate: error %d", resp.ErrorCode)
		}
		done, next, err := sess.Challenge(resp.SASLAuthBytes)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		tok = next
	}
}
