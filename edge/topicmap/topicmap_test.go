package topicmap

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMap(t *testing.T) {
	t.Parallel()
	m, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, d, err := m.Map("sensors/dev-000042/reading")
	if err != nil || s != "sensors" || d != "dev-000042" {
		t.Fatalf("Map = %q %q %v", s, d, err)
	}
	if _, d, err := m.Map("sensors/dev-1"); err != nil || d != "dev-1" {
		t.Fatalf("Map without kind = %q %v", d, err)
	}
	for _, bad := range []string{"sensors", "sensors/", "bad stream/dev/x", "/dev/x"} {
		if _, _, err := m.Map(bad); !errors.Is(err, ErrUnmapped) {
			t.Errorf("Map(%q) error = %v, want ErrUnmapped", bad, err)
		}
	}
	m2, err := New(Config{StreamLevels: 2})
	if err != nil {
		t.Fatal(err)
	}
	if s, d, err := m2.Map("plant1/line2/dev-9/reading"); err != nil || s != "plant1.line2" || d != "dev-9" {
		t.Fatalf("Map with 2 levels = %q %q %v", s, d, err)
	}
}

// TestPartitionMatchesKafka checks our murmur2 partitioner against
// franz-go's implementation of Kafka's default key partitioner.
func TestPartitionMatchesKafka(t *testing.T) {
	t.Parallel()
	p := kgo.StickyKeyPartitioner(nil).ForTopic("sensors")
	for _, n := range []int32{1, 3, 4, 7, 16} {
		for i := 0; i < 500; i++ {
			key := []byte(fmt.Sprintf("dev-%06d", i))
			if i%7 == 0 {
				key = key[:i%len(key)]
			}
			want := int32(p.Partition(&kgo.Record{Key: key}, int(n)))
			if got := Partition(key, n); got != want {
				t.Fatalf("Partition(%q, %d) = %d, kafka says %d", key, n, got, want)
			}
		}
	}
}

// splitMap is the straightforward mapping (split on "/", join the stream
// levels with "."): the reference Map must agree with.
func splitMap(levels int, topic string) (stream, device string, ok bool) {
	parts := strings.SplitN(topic, "/", levels+2)
	if len(parts) < levels+1 {
		return "", "", false
	}
	stream = strings.Join(parts[:levels], ".")
	if ValidStream(stream) != nil || parts[levels] == "" {
		return "", "", false
	}
	return stream, parts[levels], true
}

// FuzzMap: Map agrees with splitMap on every topic, for 1 to 3 levels.
func FuzzMap(f *testing.F) {
	for _, s := range []string{"sensors/dev-1/reading", "sensors/dev-1", "a/b/c/d/e", "/x/y", "s//d", "s/d/", "sensors", "a.b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		for levels := 1; levels <= 3; levels++ {
			m, err := New(Config{StreamLevels: levels})
			if err != nil {
				t.Fatal(err)
			}
			s, d, err := m.Map(topic)
			ws, wd, ok := splitMap(levels, topic)
			if (err == nil) != ok || s != ws || d != wd {
				t.Fatalf("levels %d, %q: Map = %q %q %v; want %q %q ok=%v", levels, topic, s, d, err, ws, wd, ok)
			}
			if err != nil && !errors.Is(err, ErrUnmapped) {
				t.Fatalf("levels %d, %q: error %v does not wrap ErrUnmapped", levels, topic, err)
			}
		}
	})
}
