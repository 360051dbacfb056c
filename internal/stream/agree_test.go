package stream

import (
	"testing"

	"github.com/tributary-io/tributary/edge/payload"
)

// TestPathsAgreeWithTheEdge: the stream engine and the edge read the same
// number at the same path of a JSON payload, duplicate keys included (the
// last one wins in both, as in encoding/json). A reading the edge stamped
// with one value must not be aggregated with another.
func TestPathsAgreeWithTheEdge(t *testing.T) {
	t.Parallel()
	docs := []string{
		`{"t":1,"t":2}`,
		`{"a":{"b":1},"a":{"b":3}}`,
		`{"a":{"b":1},"a":{"c":2}}`,
		`{"a":{"b":{"c":1}},"x":0,"a":{"b":{"c":4},"b":{"d":5}}}`,
		`{"l":[1,{"v":2,"v":6}],"l":[7,{"v":8}]}`,
		`{"a":5,"a":{"b":9}}`,
	}
	for _, doc := range docs {
		for _, ptr := range []string{"/t", "/a/b", "/a/c", "/a/b/c", "/a/b/d", "/l/1/v", "/l/0"} {
			sp, err := ParsePath(ptr)
			if err != nil {
				t.Fatal(err)
			}
			ep, err := payload.ParsePath(ptr)
			if err != nil {
				t.Fatal(err)
			}
			got, serr := extractNumber(fmtJSON, []byte(doc), sp)
			want, ok := payload.JSONField([]byte(doc), ep)
			switch {
			case ok != (serr == nil):
				t.Errorf("%s %s: stream %v (%v), edge %+v (found %v)", doc, ptr, got, serr, want, ok)
			case ok && (!want.IsNum || want.Num != got):
				t.Errorf("%s %s: stream %v, edge %+v", doc, ptr, got, want)
			}
		}
	}
}
