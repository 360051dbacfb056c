package cluster

import "testing"

func TestBootstrapVerdict(t *testing.T) {
	t.Parallel()
	set := []int32{1, 2, 3}
	agree := bootstrapView{Voters: []int32{1, 2, 3}}
	for _, c := range []struct {
		name            string
		views           map[int32]bootstrapView
		bootstrap, done bool
	}{
		{"all agree", map[int32]bootstrapView{1: agree, 2: agree, 3: agree}, true, false},
		{"one sees another set", map[int32]bootstrapView{1: agree, 2: {Voters: []int32{1, 2, 4}}, 3: agree}, false, false},
		{"one not yet enough brokers", map[int32]bootstrapView{1: agree, 2: {}, 3: agree}, false, false},
		{"one did not answer", map[int32]bootstrapView{1: agree, 3: agree}, false, false},
		{"one already in a cluster", map[int32]bootstrapView{1: agree, 2: agree, 3: {HasState: true}}, false, true},
	} {
		b, d, why := bootstrapVerdict(set, c.views)
		if b != c.bootstrap || d != c.done {
			t.Errorf("%s: bootstrap %v done %v (%s), want %v %v", c.name, b, d, why, c.bootstrap, c.done)
		}
	}
}
