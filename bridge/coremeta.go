package bridge

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// coreTopic is what the bridge needs to know about a core topic: how many
// partitions it has and where each partition's leader listens.
type coreTopic struct {
	partitions int32
	leaders    map[int32]string // partition -> host:port
}

// coreAdmin asks the core for metadata and creates topics. It goes through a
// franz-go client for broker discovery and controller routing; only produce
// requests use the bridge's own ordered connections.
type coreAdmin struct {
	cl      *kgo.Client
	timeout time.Duration

	mu sync.Mutex
	// known are the broker ids of the last metadata answer; failedAt is
	// when each last failed to answer: those are asked last for a while (a
	// frozen broker would cost every caller brokerTimeout).
	known    []int32
	failedAt map[int32]time.Time
}

func newCoreAdmin(cfg Config, sec linkSecurity) (*coreAdmin, error) {
	cl, err := kgo.NewClient(append(sec.clientOpts(),
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID("tributary-bridge"),
		kgo.DialTimeout(cfg.RequestTimeout),
		kgo.RetryTimeout(cfg.RequestTimeout),
		kgo.RequestRetries(2),
		// The bridge's own backoff governs outages; keep the client's short.
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	)...)
	if err != nil {
		return nil, fmt.Errorf("bridge: core client: %w", err)
	}
	return &coreAdmin{cl: cl, timeout: cfg.RequestTimeout, failedAt: map[int32]time.Time{}}, nil
}

func (a *coreAdmin) close() { a.cl.Close() }

// errTopicMissing is returned by describe when the core does not know the topic.
var errTopicMissing = errors.New("topic does not exist on the core")

// describe returns the core's view of topic. It asks the brokers it knows
// one at a time, each bounded by brokerTimeout, so a frozen broker (SIGSTOP,
// a hung disk: it accepts connections and never answers) costs one short
// wait instead of the whole request timeout; before any broker is known it
// goes through the client's seed brokers.
//
// Each attempt gets a request of its own: franz-go may still be encoding an
// abandoned attempt's request (it sets the version on it) after its context
// ended, so sharing one is a data race.
func (a *coreAdmin) describe(ctx context.Context, topic string) (coreTopic, error) {
	newReq := func() *kmsg.MetadataRequest {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		req.AllowAutoTopicCreation = false // created by ensure with the edge's partition count
		return req
	}
	var lastErr error
	for _, id := range a.brokersToAsk() {
		bctx, cancel := context.WithTimeout(ctx, min(a.timeout, brokerTimeout))
		resp, err := a.cl.Broker(int(id)).Request(bctx, newReq())
		cancel()
		if err == nil {
			return a.topicFrom(resp.(*kmsg.MetadataResponse), topic)
		}
		if ctx.Err() != nil {
			return coreTopic{}, fmt.Errorf("metadata for %s: %w", topic, ctx.Err())
		}
		a.mu.Lock()
		a.failedAt[id] = time.Now()
		a.mu.Unlock()
		lastErr = err
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	resp, err := newReq().RequestWith(ctx, a.cl)
	if err != nil {
		return coreTopic{}, fmt.Errorf("metadata for %s: %w", topic, errors.Join(err, lastErr))
	}
	return a.topicFrom(resp, topic)
}

// brokersToAsk lists the known brokers in random order, those that failed
// in the last suspectFor after the rest.
func (a *coreAdmin) brokersToAsk() []int32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := append([]int32(nil), a.known...)
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	suspect := func(id int32) bool {
		at, ok := a.failedAt[id]
		return ok && time.Since(at) < suspectFor
	}
	sort.SliceStable(ids, func(i, j int) bool { return !suspect(ids[i]) && suspect(ids[j]) })
	return ids
}

// suspectFor is how long a broker that failed to answer is asked last.
const suspectFor = 30 * time.Second

// brokerTimeout bounds one broker's metadata answer; a live broker answers
// in milliseconds.
const brokerTimeout = time.Second

// topicFrom reads topic's partitions and leader addresses from a response,
// and remembers the brokers it names.
func (a *coreAdmin) topicFrom(resp *kmsg.MetadataResponse, topic string) (coreTopic, error) {
	brokers := make(map[int32]string, len(resp.Brokers))
	ids := make([]int32, 0, len(resp.Brokers))
	for _, b := range resp.Brokers {
		brokers[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		ids = append(ids, b.NodeID)
	}
	if len(ids) > 0 {
		a.mu.Lock()
		a.known = ids
		a.mu.Unlock()
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return coreTopic{}, fmt.Errorf("metadata for %s: %w", topic, errTopicMissing)
			}
			return coreTopic{}, fmt.Errorf("metadata for %s: %w", topic, err)
		}
		ct := coreTopic{partitions: int32(len(t.Partitions)), leaders: map[int32]string{}}
		for _, p := range t.Partitions {
			if addr, ok := brokers[p.Leader]; ok && p.ErrorCode == 0 {
				ct.leaders[p.Partition] = addr
			}
		}
		if ct.partitions == 0 {
			return coreTopic{}, fmt.Errorf("metadata for %s: no partitions", topic)
		}
		return ct, nil
	}
	return coreTopic{}, fmt.Errorf("metadata for %s: topic missing from response", topic)
}

// create makes topic with n partitions and the given configs; an existing
// topic is fine.
func (a *coreAdmin) create(ctx context.Context, topic string, n int32, configs map[string]string) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = int32(a.timeout / time.Millisecond)
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = n
	rt.ReplicationFactor = -1 // the cluster's default
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	return nil
}

// ensure describes topic, creating it with n partitions when missing.
func (a *coreAdmin) ensure(ctx context.Context, topic string, n int32) (coreTopic, error) {
	ct, err := a.describe(ctx, topic)
	if errors.Is(err, errTopicMissing) {
		if err := a.create(ctx, topic, n, nil); err != nil {
			return coreTopic{}, err
		}
		ct, err = a.describe(ctx, topic)
	}
	return ct, err
}

// lastSequence asks the leader of topic/partition for the last sequence it
// holds of producer pid (DescribeProducers); found is false when the
// partition holds no state for pid.
func (a *coreAdmin) lastSequence(ctx context.Context, topic string, partition int32, pid int64) (seq int32, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic = topic
	rt.Partitions = []int32{partition}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return 0, false, fmt.Errorf("describe producers of %s/%d: %w", topic, partition, err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if t.Topic != topic || p.Partition != partition {
				continue
			}
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return 0, false, fmt.Errorf("describe producers of %s/%d: %w", topic, partition, err)
			}
			for _, ap := range p.ActiveProducers {
				if ap.ProducerID == pid {
					return ap.LastSequence, true, nil
				}
			}
			return 0, false, nil
		}
	}
	return 0, false, fmt.Errorf("describe producers of %s/%d: partition missing from response", topic, partition)
}
