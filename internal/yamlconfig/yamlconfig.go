// Package yamlconfig decodes the daemons' YAML config files strictly (an
// unknown key is an error, not a silent default) and turns the YAML
// library's Go-typed errors into lines a person can act on: the key's path
// and line, what form the value should take, and for a misspelt key the
// nearest valid one.
package yamlconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Decode reads data (the file at path, named in errors) into v, a pointer
// to a struct already holding the defaults.
func Decode(path string, data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// A syntax error already names its line.
		return fmt.Errorf("config %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	keys := keyLines(&root)
	fields := structKeys(reflect.TypeOf(v))
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		msgs = append(msgs, explain(e, keys, fields))
	}
	return fmt.Errorf("config %s: %s", path, strings.Join(msgs, "; "))
}

var (
	reUnknown = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)
	reType    = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// explain rewrites one of yaml.v3's messages.
func explain(msg string, keys map[int]string, fields map[string][]string) string {
	if m := reUnknown.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		where := keyAt(keys, line, m[2])
		valid := fields[m[3]]
		if s := nearest(m[2], valid); s != "" {
			return fmt.Sprintf("%s: unknown key; did you mean %s?", where, s)
		}
		if len(valid) > 0 {
			return fmt.Sprintf("%s: unknown key; valid keys here: %s", where, strings.Join(valid, ", "))
		}
		return where + ": unknown key"
	}
	if m := reType.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return fmt.Sprintf("%s: want %s, got %s", keyAt(keys, line, ""), expect(m[4]), m[3])
	}
	return msg
}

// keyAt names the key on line (the last one there, or the one called name).
func keyAt(keys map[int]string, line int, name string) string {
	if p, ok := keys[line]; ok && (name == "" || strings.HasSuffix(p, name)) {
		return fmt.Sprintf("%s (line %d)", p, line)
	}
	if name != "" {
		return fmt.Sprintf("%s (line %d)", name, line)
	}
	return fmt.Sprintf("line %d", line)
}

// keyLines maps each line holding a mapping key to the key's dotted path.
func keyLines(n *yaml.Node) map[int]string {
	out := map[int]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, val := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				out[k.Line] = p
				walk(val, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Kind == yaml.ScalarNode {
					out[c.Line] = p
				}
				walk(c, p)
			}
		}
	}
	walk(n, "")
	return out
}

// structKeys lists the YAML keys of every struct type reachable from t, by
// the type's name as yaml.v3 prints it ("gateway.MQTTConfig").
func structKeys(t reflect.Type) map[string][]string {
	out := map[string][]string{}
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map || t.Kind() == reflect.Array {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		if _, seen := out[t.String()]; seen {
			return
		}
		out[t.String()] = nil
		var keys []string
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := strings.Split(f.Tag.Get("yaml"), ",")
			name := tag[0]
			if name == "-" {
				continue
			}
			if len(tag) > 1 && tag[1] == "inline" {
				visit(f.Type)
				keys = append(keys, out[f.Type.String()]...)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			keys = append(keys, name)
			visit(f.Type)
		}
		sort.Strings(keys)
		out[t.String()] = keys
	}
	visit(t)
	return out
}

// expect says in words what a Go type wants.
func expect(goType string) string {
	switch goType {
	case "time.Duration":
		return "a duration like 10s, 500ms or 1h30m"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "a whole number"
	case "float32", "float64":
		return "a number"
	case "string":
		return "text"
	}
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping of keys to values"
	case strings.HasPrefix(goType, "*"):
		return expect(goType[1:])
	}
	return "a mapping of keys (" + goType + ")"
}

// nearest is the valid key closest to key, if it is close enough to be a
// likely typo.
func nearest(key string, valid []string) string {
	best, bestD := "", len(key)/2+2
	for _, v := range valid {
		if d := distance(strings.ToLower(key), v); d < bestD {
			best, bestD = v, d
		}
	}
	return best
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
