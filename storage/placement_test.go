package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage/meta"
)

// partitionDirs lists which of topic's partitions have a directory under
// dir/logs.
func partitionDirs(t *testing.T, dir, topic string) []int32 {
	return testkit.PartitionDirs(t, filepath.Join(dir, "logs"), topic)
}

// freshTopics opens topics in a new directory: the directory, its meta
// store (closed when the test ends) and the topics.
func freshTopics(t *testing.T) (string, *meta.Store, *Topics) {
	dir := t.TempDir()
	store := openTestStore(t, dir)
	return dir, store, openTestTopics(t, dir, store)
}

// A placed topic stores only its hosted partitions; hosting and dropping
// change the disk and the record, and both survive a reopen.
func TestPlacedTopic(t *testing.T) {
	t.Parallel()
	dir, store, tp := freshTopics(t)
	if err := tp.CreatePlaced("p", 4, LogConfig{}, []int32{1, 3}); err != nil {
		t.Fatal(err)
	}
	if got := partitionDirs(t, dir, "p"); !slices.Equal(got, []int32{1, 3}) {
		t.Fatalf("dirs after create: %v", got)
	}
	if info, _ := tp.Get("p"); info.Partitions != 4 || !slices.Equal(info.Hosted, []int32{1, 3}) {
		t.Fatalf("info %+v", info)
	}
	if _, err := tp.Partition("p", 0); !errors.Is(err, ErrNotHosted) {
		t.Fatalf("partition 0: %v, want ErrNotHosted", err)
	}
	if _, err := tp.Partition("p", 4); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("partition 4: %v, want ErrUnknownPartition", err)
	}
	l, err := tp.Partition("p", 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), makeBatch(t, 3, "x", 1000), AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := tp.HostPartition("p", 0); err != nil {
		t.Fatal(err)
	}
	if err := tp.HostPartition("p", 0); err != nil {
		t.Fatalf("hosting twice: %v", err)
	}
	if err := tp.DropPartition("p", 1); err != nil {
		t.Fatal(err)
	}
	if err := tp.DropPartition("p", 2); err != nil {
		t.Fatalf("dropping one not hosted: %v", err)
	}
	if got := len(tp.Logs()); got != 2 {
		t.Fatalf("%d open logs, want 2", got)
	}
	// Growing a placed topic hosts nothing new.
	if err := tp.AddPartitions("p", 6); err != nil {
		t.Fatal(err)
	}
	if got := partitionDirs(t, dir, "p"); !slices.Equal(got, []int32{0, 3}) {
		t.Fatalf("dirs after host/drop/grow: %v", got)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}

	tp = openTestTopics(t, dir, store)
	defer tp.Close()
	info, _ := tp.Get("p")
	if info.Partitions != 6 || !slices.Equal(info.Hosted, []int32{0, 3}) {
		t.Fatalf("after reopen: %+v", info)
	}
	if l, err := tp.Partition("p", 3); err != nil || l.NextOffset() != 3 {
		t.Fatalf("partition 3 after reopen: %v", err)
	}
	if err := tp.Delete("p"); err != nil {
		t.Fatal(err)
	}
	if got := partitionDirs(t, dir, "p"); len(got) != 0 {
		t.Fatalf("dirs after delete: %v", got)
	}
}

// Dropping a partition of a topic created with every partition local makes
// it placed, so the partition stays gone after a reopen.
func TestDropPartitionOfUnplacedTopic(t *testing.T) {
	t.Parallel()
	dir, store, tp := freshTopics(t)
	if err := tp.Create("all", 3, LogConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := tp.DropPartition("all", 1); err != nil {
		t.Fatal(err)
	}
	tp.Close()
	tp = openTestTopics(t, dir, store)
	defer tp.Close()
	if info, _ := tp.Get("all"); !slices.Equal(info.Hosted, []int32{0, 2}) {
		t.Fatalf("hosted after reopen: %v", info.Hosted)
	}
	if got := partitionDirs(t, dir, "all"); !slices.Equal(got, []int32{0, 2}) {
		t.Fatalf("dirs: %v", got)
	}
}

// A directory left by a drop that crashed after the record was written is
// removed at the next open, and its data never comes back as the
// partition's when it is hosted again.
func TestOrphanPartitionDirRemoved(t *testing.T) {
	t.Parallel()
	dir, store, tp := freshTopics(t)
	if err := tp.CreatePlaced("o", 2, LogConfig{}, []int32{0}); err != nil {
		t.Fatal(err)
	}
	tp.Close()
	orphan := partitionDir(filepath.Join(dir, "logs"), "o", 1)
	l := openTestLog(t, orphan, LogConfig{})
	if _, err := l.Append(context.Background(), makeBatch(t, 2, "old", 1000), AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	l.Close()

	tp = openTestTopics(t, dir, store)
	defer tp.Close()
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("orphan dir still there: %v", err)
	}
	if err := tp.HostPartition("o", 1); err != nil {
		t.Fatal(err)
	}
	if l, err := tp.Partition("o", 1); err != nil || l.NextOffset() != 0 {
		t.Fatalf("re-hosted partition: err %v", err)
	}
}
