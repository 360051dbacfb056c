package rules

import (
	"strings"
	"testing"
)

// refMatch is the matcher written the obvious way (split both, recurse),
// for the differential fuzz target.
func refMatch(f *filter, levels []string, i int, caps map[string]string) bool {
	if i == len(f.segs) {
		return len(levels) == 0
	}
	s := f.segs[i]
	switch s.kind {
	case segHash:
		return true
	case segOptional:
		if len(levels) == 0 {
			return true
		}
		if len(levels) == 1 && levels[0] != "" {
			caps[f.names[s.cap]] = levels[0]
			return true
		}
		return false
	case segRest:
		rest := strings.Join(levels, "/")
		if rest == "" {
			return false // captures are never empty
		}
		caps[f.names[s.cap]] = rest
		return true
	}
	if len(levels) == 0 {
		return false
	}
	switch s.kind {
	case segLiteral:
		if levels[0] != s.lit {
			return false
		}
	case segCapture:
		if levels[0] == "" {
			return false
		}
		caps[f.names[s.cap]] = levels[0]
	}
	return refMatch(f, levels[1:], i+1, caps)
}

// FuzzMatch checks the allocation-free matcher against refMatch for any
// filter that compiles and any topic, and that rendering never panics.
func FuzzMatch(f *testing.F) {
	f.Add("tele/{device}/SENSOR", "tele/plug-1/SENSOR")
	f.Add("shellies/{device}/{+rest}", "shellies/s1/relay/0/power")
	f.Add("spBv1.0/{group}/{type}/{node}/{device?}", "spBv1.0/g/NDATA/n")
	f.Add("a/+/#", "a/b")
	f.Add("{s1}/{device}/#", "$SYS/x/y")
	f.Add("x/{a}/", "x//")
	f.Fuzz(func(t *testing.T, filterText, topic string) {
		flt, err := parseFilter(filterText)
		if err != nil {
			return
		}
		var c Captures
		got := flt.match(topic, &c)
		want := map[string]string{}
		ok := !(strings.HasPrefix(topic, "$") && flt.segs[0].kind != segLiteral) &&
			refMatch(flt, strings.Split(topic, "/"), 0, want)
		if got != ok {
			t.Fatalf("filter %q topic %q: match %v, reference %v", filterText, topic, got, ok)
		}
		if !got {
			return
		}
		for i, n := range flt.names {
			if g := c.Get(i); g != want[n] {
				t.Fatalf("filter %q topic %q: {%s} = %q, reference %q", filterText, topic, n, g, want[n])
			}
		}
		tpl, err := parseTemplate("s.{"+strings.Join(flt.names, "}.{")+"}", flt)
		if err == nil {
			_ = tpl.render(&c, '.')
		}
	})
}
