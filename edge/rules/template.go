package rules

import (
	"fmt"
	"strings"
)

// template is a compiled "text {capture} text" string.
type template struct {
	src   string
	parts []tpart
}

type tpart struct {
	lit string
	cap int // -1 for a literal part
}

func parseTemplate(src string, f *filter) (template, error) {
	t := template{src: src}
	rest := src
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return t, fmt.Errorf("template %q: unmatched '}'", src)
			}
			t.parts = append(t.parts, tpart{lit: rest, cap: -1})
			break
		}
		if i > 0 {
			if strings.IndexByte(rest[:i], '}') >= 0 {
				return t, fmt.Errorf("template %q: unmatched '}'", src)
			}
			t.parts = append(t.parts, tpart{lit: rest[:i], cap: -1})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return t, fmt.Errorf("template %q: unclosed '{'", src)
		}
		name := rest[i+1 : i+j]
		c := f.capture(name)
		if c < 0 {
			return t, fmt.Errorf("template %q: capture {%s} is not defined by the filter (it defines %s)", src, name, describe(f.names))
		}
		t.parts = append(t.parts, tpart{cap: c})
		rest = rest[i+j+1:]
	}
	return t, nil
}

func describe(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return "{" + strings.Join(names, "}, {") + "}"
}

// render returns the template's text for a match. One literal part or one
// capture is returned without allocating; '/' from a multi-level capture
// becomes sep when sep is not 0 (stream names cannot hold '/').
func (t *template) render(c *Captures, sep byte) string {
	switch len(t.parts) {
	case 0:
		return ""
	case 1:
		p := t.parts[0]
		if p.cap < 0 {
			return p.lit
		}
		v := c.Get(p.cap)
		if sep == 0 || strings.IndexByte(v, '/') < 0 {
			return v
		}
	}
	n := 0
	for _, p := range t.parts {
		if p.cap < 0 {
			n += len(p.lit)
		} else {
			n += len(c.Get(p.cap))
		}
	}
	b := make([]byte, 0, n)
	for _, p := range t.parts {
		if p.cap < 0 {
			b = append(b, p.lit...)
			continue
		}
		v := c.Get(p.cap)
		for i := 0; i < len(v); i++ {
			if v[i] == '/' && sep != 0 {
				b = append(b, sep)
			} else {
				b = append(b, v[i])
			}
		}
	}
	return string(b)
}

// constant reports whether the template holds no capture.
func (t *template) constant() bool {
	for _, p := range t.parts {
		if p.cap >= 0 {
			return false
		}
	}
	return true
}

// mayRender reports whether the template can render s for some captures
// (each capture standing for any non-empty text): a glob match.
func (t *template) mayRender(s string) bool { return globParts(t.parts, s) }

func globParts(parts []tpart, s string) bool {
	if len(parts) == 0 {
		return s == ""
	}
	p := parts[0]
	if p.cap < 0 {
		return strings.HasPrefix(s, p.lit) && globParts(parts[1:], s[len(p.lit):])
	}
	for i := 1; i <= len(s); i++ { // a capture takes at least one byte
		if globParts(parts[1:], s[i:]) {
			return true
		}
	}
	return false
}
