package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzFSMCommands runs an arbitrary sequence of metadata commands (decoded from the fuzz input
// over a small id space, so collisions are common) on two state machines and checks the
// invariants elections rely on after every step, that both replicas agree byte for byte, and that
// a snapshot restores to the same state.
func FuzzFSMCommands(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 3, 2, 0, 6, 3, 1, 2, 5, 0, 0, 1, 1})
	f.Add([]byte{0, 1, 0, 2, 2, 1, 1, 2, 1, 2, 1, 1, 0, 1, 5, 1, 0, 0})
	f.Add([]byte{0, 0, 0, 1, 0, 2, 0, 3, 2, 2, 9, 3, 1, 0, 1, 1, 0, 3, 5, 2, 3, 0, 1})
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) > 400 {
			return
		}
		a := NewFSM(slog.New(slog.DiscardHandler))
		b := NewFSM(slog.New(slog.DiscardHandler))
		prev := map[string][2]int32{}
		var index uint64
		next := func() (byte, bool) {
			if len(prog) == 0 {
				return 0, false
			}
			v := prog[0]
			prog = prog[1:]
			return v, true
		}
		for step := 0; step < 100; step++ {
			op, ok := next()
			if !ok {
				break
			}
			x, _ := next()
			y, _ := next()
			z, _ := next()
			var c command
			topic := fmt.Sprintf("t%d", x%3)
			switch op % 7 {
			case 0:
				c = command{Op: opRegisterBroker, Broker: &Broker{ID: int32(x % 5)}}
				prog = append([]byte{y, z}, prog...) // unused operands go back
			case 1:
				c = command{Op: opBrokerDown, BrokerID: int32(x % 5)}
				prog = append([]byte{y, z}, prog...)
			case 2:
				c = command{Op: opCreateTopic, Topic: topic, Partitions: int32(y % 8), RF: int16(z % 5)}
				if z&0x80 != 0 {
					c.Config = map[string]string{UncleanLeaderElectionConfig: "true"}
				}
			case 3:
				c = command{Op: opDeleteTopic, Topic: topic}
				prog = append([]byte{y, z}, prog...)
				// A re-created topic starts its epochs again.
				for k := range prev {
					if strings.HasPrefix(k, topic+"/") {
						delete(prev, k)
					}
				}
			case 4:
				c = command{Op: opCreatePartitions, Topic: topic, Partitions: int32(y % 10)}
				prog = append([]byte{z}, prog...)
			case 5, 6:
				// An ISR change from the current leader's point of view (mostly valid), with the
				// ISR drawn from the bits of z, or with stale epochs when op is 6.
				p, ok := a.Metadata().Partition(topic, int32(y%8))
				c = command{Op: opAlterISR, Topic: topic, Partition: int32(y % 8)}
				if ok {
					c.Leader, c.LeaderEpoch, c.PartitionEpoch = p.Leader, p.LeaderEpoch, p.PartitionEpoch
					if op%7 == 6 {
						c.PartitionEpoch--
					}
					for i, r := range p.Replicas {
						if z&(1<<i) != 0 {
							c.ISR = append(c.ISR, r)
						}
					}
				}
			}
			data, err := encodeCommand(c)
			if err != nil {
				t.Fatal(err)
			}
			index++
			a.Apply(&raft.Log{Index: index, Data: data})
			b.Apply(&raft.Log{Index: index, Data: data})
			checkInvariants(t, a.Metadata(), prev)
		}
		ja, _ := json.Marshal(a.Metadata())
		jb, _ := json.Marshal(b.Metadata())
		if !bytes.Equal(ja, jb) {
			t.Fatalf("replicas diverged:\n%s\n%s", ja, jb)
		}
		snap, _ := a.Snapshot()
		var sink bufSink
		if err := snap.Persist(&sink); err != nil {
			t.Fatal(err)
		}
		r := NewFSM(slog.New(slog.DiscardHandler))
		if err := r.Restore(io.NopCloser(&sink.Buffer)); err != nil {
			t.Fatal(err)
		}
		jr, _ := json.Marshal(r.Metadata())
		if !bytes.Equal(ja, jr) {
			t.Fatalf("snapshot round trip differs:\n%s\n%s", ja, jr)
		}
	})
}

func checkInvariants(t *testing.T, md *Snapshot, prev map[string][2]int32) {
	t.Helper()
	alive := func(id int32) bool { b, ok := md.Brokers[id]; return ok && b.Alive }
	for _, name := range md.sortedTopicNames() {
		tp := md.Topics[name]
		for _, p := range tp.Partitions {
			where := fmt.Sprintf("%s/%d %+v", name, p.Partition, p)
			if len(p.Replicas) == 0 || len(p.ISR) == 0 {
				t.Fatalf("%s: empty replicas or ISR", where)
			}
			for i, r := range p.Replicas {
				if slices.Contains(p.Replicas[i+1:], r) {
					t.Fatalf("%s: duplicate replica", where)
				}
			}
			for _, r := range p.ISR {
				if !slices.Contains(p.Replicas, r) {
					t.Fatalf("%s: ISR member not a replica", where)
				}
				if !alive(r) && len(p.ISR) > 1 {
					t.Fatalf("%s: dead broker %d kept in a multi-member ISR", where, r)
				}
			}
			if p.Leader != NoLeader && (!alive(p.Leader) || !slices.Contains(p.ISR, p.Leader)) {
				t.Fatalf("%s: leader dead or outside the ISR", where)
			}
			if p.Leader == NoLeader {
				for _, r := range p.Replicas {
					if alive(r) && (slices.Contains(p.ISR, r) || unclean(tp)) {
						t.Fatalf("%s: offline although %d could lead", where, r)
					}
				}
			}
			key := fmt.Sprintf("%s/%d/%v", name, p.Partition, p.Replicas)
			if old, ok := prev[key]; ok && (p.LeaderEpoch < old[0] || p.PartitionEpoch < old[1]) {
				t.Fatalf("%s: epochs went backwards from %v", where, old)
			}
			prev[key] = [2]int32{p.LeaderEpoch, p.PartitionEpoch}
		}
	}
}

// FuzzRaftLogDecode: stored entries decode without panicking whatever the bytes, and every entry
// survives an encode/decode round trip.
func FuzzRaftLogDecode(f *testing.F) {
	f.Add(encodeLog(&raft.Log{Term: 3, Type: raft.LogCommand, Data: []byte("x"), Extensions: []byte("e")}), []byte("d"), uint64(7))
	f.Add([]byte{1, 0, 0}, []byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, stored, data []byte, term uint64) {
		var l raft.Log
		_ = decodeLog(stored, &l)
		in := &raft.Log{Term: term, Type: raft.LogType(term % 6), Data: data, Extensions: stored}
		var out raft.Log
		if err := decodeLog(encodeLog(in), &out); err != nil {
			t.Fatal(err)
		}
		if out.Term != in.Term || out.Type != in.Type || !bytes.Equal(out.Data, in.Data) || !bytes.Equal(out.Extensions, in.Extensions) {
			t.Fatalf("round trip: %+v -> %+v", in, out)
		}
	})
}
