package meta

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func reopen(t *testing.T, s *Store, path string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	return s2
}

func TestTopicsRoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := openTemp(t)
	want := []TopicRecord{
		{Name: "b", Partitions: 3, Config: []byte(`{"segment_bytes":1024}`), CreatedMs: 42},
		{Name: "a", Partitions: 1, CreatedMs: 7},
		{Name: "a.b-c_d", Partitions: 12, Config: []byte(`{}`)},
	}
	for _, tr := range want {
		if err := s.PutTopic(tr); err != nil {
			t.Fatalf("put %q: %v", tr.Name, err)
		}
	}
	got, err := s.Topics()
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, g := range got {
		names = append(names, g.Name)
	}
	if !reflect.DeepEqual(names, []string{"a", "a.b-c_d", "b"}) {
		t.Fatalf("topics not sorted by name: %v", names)
	}
	one, err := s.Topic("b")
	if err != nil || !reflect.DeepEqual(one, want[0]) {
		t.Fatalf("topic b = %+v, %v; want %+v", one, err, want[0])
	}
	// Replace keeps one record.
	if err := s.PutTopic(TopicRecord{Name: "b", Partitions: 6}); err != nil {
		t.Fatal(err)
	}
	one, _ = s.Topic("b")
	if one.Partitions != 6 || one.Config != nil {
		t.Fatalf("replaced topic b = %+v", one)
	}
	if _, err := s.Topic("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing topic error = %v, want ErrNotFound", err)
	}
	if err := s.PutTopic(TopicRecord{}); err == nil {
		t.Fatal("empty topic name accepted")
	}
	if err := s.DeleteTopic("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic("never-existed"); err != nil {
		t.Fatalf("deleting an absent topic: %v", err)
	}
	got, _ = s.Topics()
	if len(got) != 2 || got[0].Name != "a.b-c_d" || got[1].Name != "b" {
		t.Fatalf("after delete: %+v", got)
	}
}

func TestOffsetsRoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := openTemp(t)
	if got, err := s.FetchOffsets("g1"); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("fetch of unknown group = %v, %v; want empty non-nil map", got, err)
	}
	in := map[TopicPartition]OffsetCommit{
		{"t", 0}:          {Offset: 10, LeaderEpoch: 1, Metadata: "m", CommitMs: 100},
		{"t", 1}:          {Offset: 20, LeaderEpoch: -1},
		{"t", 1 << 30}:    {Offset: 1},
		{"other", 0}:      {Offset: 0},
		{"t\x00weird", 3}: {Offset: 5},
	}
	if err := s.CommitOffsets("g1", in); err != nil {
		t.Fatal(err)
	}
	got, err := s.FetchOffsets("g1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("fetch = %v, want %v", got, in)
	}
	// A second commit overwrites one partition and leaves the rest.
	if err := s.CommitOffsets("g1", map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: 11}}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.FetchOffsets("g1")
	if got[TopicPartition{"t", 0}].Offset != 11 || got[TopicPartition{"t", 1}].Offset != 20 {
		t.Fatalf("after overwrite: %v", got)
	}
	if err := s.CommitOffsets("g0", map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	// An empty commit creates no group.
	if err := s.CommitOffsets("g-empty", nil); err != nil {
		t.Fatal(err)
	}
	groups, err := s.Groups()
	if err != nil || !reflect.DeepEqual(groups, []string{"g0", "g1"}) {
		t.Fatalf("groups = %v, %v", groups, err)
	}
	if err := s.CommitOffsets("", in); err == nil {
		t.Fatal("empty group accepted")
	}
	if err := s.CommitOffsets("g", map[TopicPartition]OffsetCommit{{"", 0}: {}}); err == nil {
		t.Fatal("empty topic accepted")
	}

	if err := s.DeleteOffsets("g1", []TopicPartition{{"t", 1}, {"absent", 9}}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.FetchOffsets("g1")
	if _, ok := got[TopicPartition{"t", 1}]; ok || len(got) != len(in)-1 {
		t.Fatalf("after DeleteOffsets: %v", got)
	}
	if err := s.DeleteOffsets("g0", []TopicPartition{{"t", 0}}); err != nil {
		t.Fatal(err)
	}
	groups, _ = s.Groups()
	if !reflect.DeepEqual(groups, []string{"g1"}) {
		t.Fatalf("group without offsets still listed: %v", groups)
	}
	if err := s.DeleteGroup("g1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup("g1"); err != nil {
		t.Fatalf("deleting an absent group: %v", err)
	}
	groups, _ = s.Groups()
	if len(groups) != 0 {
		t.Fatalf("groups after delete: %v", groups)
	}
	if got, _ := s.FetchOffsets("g1"); len(got) != 0 {
		t.Fatalf("offsets after group delete: %v", got)
	}
}

func TestDeleteTopicRemovesOffsetsInAllGroups(t *testing.T) {
	t.Parallel()
	s, _ := openTemp(t)
	if err := s.PutTopic(TopicRecord{Name: "t", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	// "t" must not take "tt" or "t2" with it although they share a prefix.
	for g := 0; g < 5; g++ {
		offs := map[TopicPartition]OffsetCommit{}
		for p := int32(0); p < 3; p++ {
			offs[TopicPartition{"t", p}] = OffsetCommit{Offset: int64(g*10) + int64(p)}
		}
		if g%2 == 0 {
			offs[TopicPartition{"tt", 0}] = OffsetCommit{Offset: 99}
			offs[TopicPartition{"t2", 1}] = OffsetCommit{Offset: 98}
		}
		if err := s.CommitOffsets(fmt.Sprintf("g%d", g), offs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	for g := 0; g < 5; g++ {
		got, err := s.FetchOffsets(fmt.Sprintf("g%d", g))
		if err != nil {
			t.Fatal(err)
		}
		for tp := range got {
			if tp.Topic == "t" {
				t.Fatalf("group g%d still has %v", g, tp)
			}
		}
		if g%2 == 0 && (len(got) != 2 || got[TopicPartition{"tt", 0}].Offset != 99 || got[TopicPartition{"t2", 1}].Offset != 98) {
			t.Fatalf("group g%d lost other topics: %v", g, got)
		}
		if g%2 == 1 && len(got) != 0 {
			t.Fatalf("group g%d = %v, want empty", g, got)
		}
	}
	groups, _ := s.Groups()
	if !reflect.DeepEqual(groups, []string{"g0", "g2", "g4"}) {
		t.Fatalf("groups = %v: groups left with no offsets should vanish", groups)
	}
	if _, err := s.Topic("t"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("topic record survived: %v", err)
	}
}

func TestCursorsAndValues(t *testing.T) {
	t.Parallel()
	s, _ := openTemp(t)
	if _, ok, err := s.Cursor("e1/t/0"); ok || err != nil {
		t.Fatalf("unknown cursor: ok=%v err=%v", ok, err)
	}
	for name, off := range map[string]int64{"e1/t/0": 5, "e1/t/1": -1, "e2/t/0": 1 << 40} {
		if err := s.PutCursor(name, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutCursor("e1/t/0", 6); err != nil {
		t.Fatal(err)
	}
	if off, ok, err := s.Cursor("e1/t/0"); !ok || err != nil || off != 6 {
		t.Fatalf("cursor = %d %v %v", off, ok, err)
	}
	if off, ok, _ := s.Cursor("e1/t/1"); !ok || off != -1 {
		t.Fatalf("negative cursor = %d %v", off, ok)
	}
	e1, err := s.Cursors("e1/")
	if err != nil || !reflect.DeepEqual(e1, map[string]int64{"e1/t/0": 6, "e1/t/1": -1}) {
		t.Fatalf("Cursors(e1/) = %v %v", e1, err)
	}
	all, _ := s.Cursors("")
	if len(all) != 3 {
		t.Fatalf("Cursors() = %v", all)
	}
	if err := s.DeleteCursor("e1/t/1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Cursor("e1/t/1"); ok {
		t.Fatal("deleted cursor still there")
	}
	if err := s.PutCursor("", 1); err == nil {
		t.Fatal("empty cursor name accepted")
	}

	if _, err := s.Value("node-id"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent value: %v", err)
	}
	if err := s.PutValue("node-id", []byte("n1")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutValue("node-empty", nil); err != nil {
		t.Fatal(err)
	}
	v, err := s.Value("node-id")
	if err != nil || string(v) != "n1" {
		t.Fatalf("value = %q %v", v, err)
	}
	v[0] = 'X' // the returned slice is the caller's own
	if v2, _ := s.Value("node-id"); string(v2) != "n1" {
		t.Fatalf("value changed through returned slice: %q", v2)
	}
	if v, err := s.Value("node-empty"); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("empty value = %v %v, want empty non-nil", v, err)
	}
	keys, vals, err := s.Values("node-")
	if err != nil || !reflect.DeepEqual(keys, []string{"node-empty", "node-id"}) || string(vals[1]) != "n1" {
		t.Fatalf("Values = %v %q %v", keys, vals, err)
	}
	if err := s.DeleteValue("node-id"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Value("node-id"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted value: %v", err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	t.Parallel()
	s, path := openTemp(t)
	tr := TopicRecord{Name: "sensors", Partitions: 4, Config: []byte(`{"x":1}`), CreatedMs: 1700000000000}
	offs := map[TopicPartition]OffsetCommit{{"sensors", 2}: {Offset: 77, LeaderEpoch: 3, Metadata: "md", CommitMs: 5}}
	must(t, s.PutTopic(tr))
	must(t, s.CommitOffsets("analytics", offs))
	must(t, s.PutCursor("edge-1/sensors/0", 1234))
	must(t, s.PutValue("node-id", []byte{1, 2, 3}))
	var lastPID int64
	for i := 0; i < 3; i++ {
		id, err := s.NextProducerID()
		must(t, err)
		lastPID = id
	}

	s = reopen(t, s, path)
	topics, err := s.Topics()
	must(t, err)
	if len(topics) != 1 || !reflect.DeepEqual(topics[0], tr) {
		t.Fatalf("topics after reopen = %+v", topics)
	}
	got, err := s.FetchOffsets("analytics")
	must(t, err)
	if !reflect.DeepEqual(got, offs) {
		t.Fatalf("offsets after reopen = %v", got)
	}
	if off, ok, err := s.Cursor("edge-1/sensors/0"); !ok || err != nil || off != 1234 {
		t.Fatalf("cursor after reopen = %d %v %v", off, ok, err)
	}
	if v, err := s.Value("node-id"); err != nil || !bytes.Equal(v, []byte{1, 2, 3}) {
		t.Fatalf("value after reopen = %v %v", v, err)
	}
	id, err := s.NextProducerID()
	must(t, err)
	if id <= lastPID {
		t.Fatalf("producer id %d after reopen not above %d", id, lastPID)
	}
}

func TestNextProducerIDStrictlyIncreasingAcrossReopen(t *testing.T) {
	t.Parallel()
	s, path := openTemp(t)
	var last int64
	for round := 0; round < 4; round++ {
		for i := 0; i < 10; i++ {
			id, err := s.NextProducerID()
			must(t, err)
			if id <= last {
				t.Fatalf("round %d: id %d not above %d", round, id, last)
			}
			last = id
		}
		s = reopen(t, s, path)
	}
	if last != 40 {
		t.Fatalf("last id = %d, want 40 (ids start at 1, no gaps without crashes)", last)
	}
}

func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	s, path := openTemp(t)
	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	ids := make(chan int64, workers*perWorker)
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			group := fmt.Sprintf("g%d", w%3)
			for i := 0; i < perWorker; i++ {
				id, err := s.NextProducerID()
				if err != nil {
					errs <- err
					return
				}
				ids <- id
				tp := TopicPartition{"t", int32(w)}
				if err := s.CommitOffsets(group, map[TopicPartition]OffsetCommit{tp: {Offset: int64(i)}}); err != nil {
					errs <- err
					return
				}
				if err := s.PutCursor(fmt.Sprintf("e/%d", w), int64(i)); err != nil {
					errs <- err
					return
				}
				if _, err := s.FetchOffsets(group); err != nil {
					errs <- err
					return
				}
				if _, err := s.Groups(); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("producer id %d handed out twice", id)
		}
		seen[id] = true
	}
	if len(seen) != workers*perWorker {
		t.Fatalf("%d distinct ids, want %d", len(seen), workers*perWorker)
	}
	s = reopen(t, s, path)
	for w := 0; w < workers; w++ {
		off, ok, err := s.Cursor(fmt.Sprintf("e/%d", w))
		if err != nil || !ok || off != perWorker-1 {
			t.Fatalf("cursor e/%d = %d %v %v", w, off, ok, err)
		}
		got, err := s.FetchOffsets(fmt.Sprintf("g%d", w%3))
		must(t, err)
		if got[TopicPartition{"t", int32(w)}].Offset != perWorker-1 {
			t.Fatalf("worker %d offset = %v", w, got)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing-dir", "meta.db")); err == nil {
		t.Fatal("open in a missing directory succeeded")
	}
	s, _ := openTemp(t)
	must(t, s.Close())
	if err := s.PutCursor("x", 1); err == nil {
		t.Fatal("write after close succeeded")
	}
	if _, err := s.Topics(); err == nil {
		t.Fatal("read after close succeeded")
	}
}

func TestSecondOpenFailsInsteadOfHanging(t *testing.T) {
	_, path := openTemp(t)
	defer func(d time.Duration) { openTimeout = d }(openTimeout)
	openTimeout = 100 * time.Millisecond
	s2, err := Open(path)
	if err == nil {
		_ = s2.Close()
		t.Fatal("a second Open of a file in use succeeded")
	}
}

func TestOffsetKeyRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tp := range []TopicPartition{{"a", 0}, {"t\x00x", -1}, {"long-topic.name_1", 1<<31 - 1}} {
		got, err := parseOffsetKey(offsetKey(tp))
		if err != nil || got != tp {
			t.Fatalf("offset key round trip of %v = %v %v", tp, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {0, 1, 'a'}, {0, 5, 'a', 0, 0, 0, 0}} {
		if _, err := parseOffsetKey(bad); err == nil {
			t.Fatalf("parseOffsetKey(%v) accepted", bad)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
