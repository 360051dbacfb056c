package server

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/storage/recordbatch"
)

// FuzzDispatch feeds arbitrary frames (size prefix stripped) to the request
// dispatcher of a real broker: it must never panic, and whatever it answers
// must be a well-formed response frame for the same correlation id.
func FuzzDispatch(f *testing.F) {
	srv := fuzzBroker(f)

	batch, err := recordbatch.Build([]recordbatch.Record{{Timestamp: 1, Key: []byte("k"), Value: []byte("v")}}, recordbatch.NoProducer)
	if err != nil {
		f.Fatal(err)
	}
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 9
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("fuzz")}}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.MaxWaitMillis, fetch.MinBytes = 11, 50, 1
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "fuzz", Partitions: []kmsg.FetchRequestTopicPartition{{PartitionMaxBytes: 1 << 20}}}}
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.Version = 5
	ct.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "made", NumPartitions: 2, ReplicationFactor: 1,
		Configs: []kmsg.CreateTopicsRequestTopicConfig{{Name: "retention.ms", Value: kmsg.StringPtr("1000")}}}}
	dc := kmsg.NewPtrDescribeConfigsRequest()
	dc.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "fuzz"}}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version = 5
	lo.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "fuzz", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Timestamp: -1}}}}
	av := apiVersions(3)
	for _, r := range []kmsg.Request{av, md, produceReq(1, "fuzz", 0, batch), fetch, ct, dc, lo, kmsg.NewPtrInitProducerIDRequest()} {
		addSeed(f, r)
	}

	fuzzFrames(f, srv)
}

// fuzzBroker starts the real broker the dispatch fuzzers feed.
func fuzzBroker(f *testing.F) *Server {
	cfg := testConfig(f.TempDir())
	cfg.HTTPAddr = ""
	cfg.MaxPartitions = 4
	cfg.DefaultPartitions = 1
	srv, err := Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close() })
	return srv
}

// addSeed adds req as a frame (size prefix stripped) to the corpus.
func addSeed(f *testing.F, req kmsg.Request) {
	f.Add(kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz")).AppendRequest(nil, req, 42)[4:])
}

// fuzzFrames feeds each input to the dispatcher: it must never panic, and
// whatever it answers must be a well-formed response frame for the same
// correlation id.
func fuzzFrames(f *testing.F, srv *Server) {
	f.Fuzz(func(t *testing.T, frame []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		resp, err := srv.handleFrame(ctx, &clientConn{remote: "fuzz"}, frame)
		if err != nil || resp == nil {
			return
		}
		if len(resp) < 8 || int(binary.BigEndian.Uint32(resp)) != len(resp)-4 {
			t.Fatalf("response frame size prefix %x does not match %d bytes", resp[:4], len(resp)-4)
		}
		if got, want := binary.BigEndian.Uint32(resp[4:]), binary.BigEndian.Uint32(frame[4:]); got != want {
			t.Fatalf("correlation id %d, want %d", got, want)
		}
	})
}

// FuzzSaslConn feeds up to four arbitrary frames, in order, to one
// connection of a SASL listener with ACLs on: nothing panics, and no request
// other than ApiVersions, SaslHandshake and SaslAuthenticate is ever served
// before the connection has authenticated.
func FuzzSaslConn(f *testing.F) {
	cfg := testConfig(f.TempDir())
	cfg.HTTPAddr = ""
	cfg.Listeners = []ListenerConfig{{Name: "SASL_PLAINTEXT", Protocol: ProtocolSASLPlaintext, Addr: "127.0.0.1:0"}}
	cfg.Security = SecurityConfig{Users: []UserConfig{{Name: "admin", Password: "admin-secret"}}, SuperUsers: []string{"User:admin"}}
	srv, err := Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close() })
	// The input is up to four frames, each behind a 2-byte length.
	raw := func(b []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...) }
	frame := func(r kmsg.Request) []byte {
		return raw(kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz")).AppendRequest(nil, r, 7)[4:])
	}
	hs0, hs1 := kmsg.NewPtrSASLHandshakeRequest(), kmsg.NewPtrSASLHandshakeRequest()
	hs0.Mechanism, hs1.Version, hs1.Mechanism = "PLAIN", 1, "SCRAM-SHA-256"
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.Version, auth.SASLAuthBytes = 1, []byte("n,,n=admin,r=abc")
	f.Add(append(frame(hs1), frame(auth)...))
	f.Add(append(frame(hs0), raw([]byte("\x00admin\x00wrong"))...))
	f.Add(append(frame(apiVersions(3)), frame(kmsg.NewPtrMetadataRequest())...))

	f.Fuzz(func(t *testing.T, in []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		cc := &clientConn{remote: "fuzz:1", host: "fuzz", principal: "User:ANONYMOUS", needSASL: true}
		for i := 0; i < 4 && len(in) >= 2; i++ {
			n := int(binary.BigEndian.Uint16(in))
			in = in[2:]
			if n > len(in) {
				n = len(in)
			}
			fr := in[:n]
			in = in[n:]
			rawToken := cc.sasl.v0 && cc.sasl.mechanism != ""
			authed := cc.authed.Load()
			done, _, err := srv.prepareFrame(ctx, cc, fr)
			if err != nil {
				return // the connection would be closed
			}
			if !authed && !rawToken { // a served request frame has its 8-byte header
				if key := int16(binary.BigEndian.Uint16(fr)); !preAuthAllowed(key) {
					t.Fatalf("api key %d served before authentication", key)
				}
			}
			done()
			if cc.closeAfter {
				return
			}
		}
	})
}
