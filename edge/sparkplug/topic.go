package sparkplug

import (
	"errors"
	"fmt"
	"strings"
)

// Namespace is the first topic level of every Sparkplug B topic.
const Namespace = "spBv1.0"

// Message types, as they appear in the third topic level.
const (
	NBIRTH = "NBIRTH"
	NDEATH = "NDEATH"
	NDATA  = "NDATA"
	NCMD   = "NCMD"
	DBIRTH = "DBIRTH"
	DDEATH = "DDEATH"
	DDATA  = "DDATA"
	DCMD   = "DCMD"
	STATE  = "STATE"
)

// Topic is a parsed Sparkplug B topic. For STATE only Type and HostID are
// set; for the other types HostID is empty and Device is set exactly when the
// type is a device type (D*).
type Topic struct {
	Group, Type, Node, Device, HostID string
}

// IsDevice reports whether the topic is about a device (DBIRTH, DDEATH, DDATA,
// DCMD).
func (t Topic) IsDevice() bool { return t.Device != "" }

// String rebuilds the MQTT topic.
func (t Topic) String() string {
	if t.Type == STATE {
		return Namespace + "/" + STATE + "/" + t.HostID
	}
	s := Namespace + "/" + t.Group + "/" + t.Type + "/" + t.Node
	if t.Device != "" {
		s += "/" + t.Device
	}
	return s
}

// ErrNotSparkplug is wrapped by ParseTopic's error when the topic is not in
// the spBv1.0 namespace at all, so a caller can tell "not ours" from "ours
// but malformed".
var ErrNotSparkplug = errors.New("not a Sparkplug B topic")

// messageType returns the canonical constant for s (so a parsed Topic does not
// keep the type as a slice of the caller's string) and whether it is a device
// type.
func messageType(s string) (typ string, device bool, ok bool) {
	switch s {
	case NBIRTH:
		return NBIRTH, false, true
	case NDEATH:
		return NDEATH, false, true
	case NDATA:
		return NDATA, false, true
	case NCMD:
		return NCMD, false, true
	case DBIRTH:
		return DBIRTH, true, true
	case DDEATH:
		return DDEATH, true, true
	case DDATA:
		return DDATA, true, true
	case DCMD:
		return DCMD, true, true
	}
	return "", false, false
}

// ParseTopic splits a Sparkplug B topic:
//
//	spBv1.0/<group>/<NBIRTH|NDEATH|NDATA|NCMD>/<edge node>
//	spBv1.0/<group>/<DBIRTH|DDEATH|DDATA|DCMD>/<edge node>/<device>
//	spBv1.0/STATE/<host id>
//
// Every level must be non-empty and free of MQTT wildcards; device types need
// the device level and node types must not have it.
func ParseTopic(topic string) (Topic, error) {
	var lv [5]string
	n := 0
	rest := topic
	for {
		i := strings.IndexByte(rest, '/')
		if n == len(lv) {
			return Topic{}, fmt.Errorf("sparkplug topic %q: more than 5 levels", topic)
		}
		if i < 0 {
			lv[n] = rest
			n++
			break
		}
		lv[n] = rest[:i]
		n++
		rest = rest[i+1:]
	}
	if lv[0] != Namespace {
		return Topic{}, fmt.Errorf("topic %q: first level is not %s: %w", topic, Namespace, ErrNotSparkplug)
	}
	for i := 1; i < n; i++ {
		if lv[i] == "" {
			return Topic{}, fmt.Errorf("sparkplug topic %q: level %d is empty", topic, i+1)
		}
		if strings.ContainsAny(lv[i], "+#") {
			return Topic{}, fmt.Errorf("sparkplug topic %q: level %d holds an MQTT wildcard", topic, i+1)
		}
	}
	if n >= 2 && lv[1] == STATE {
		if n != 3 {
			return Topic{}, fmt.Errorf("sparkplug topic %q: STATE takes exactly one host id level (spBv1.0/STATE/<host id>)", topic)
		}
		return Topic{Type: STATE, HostID: lv[2]}, nil
	}
	if n < 4 {
		return Topic{}, fmt.Errorf("sparkplug topic %q: want spBv1.0/<group>/<type>/<edge node>[/<device>], got %d levels", topic, n)
	}
	typ, device, ok := messageType(lv[2])
	if !ok {
		return Topic{}, fmt.Errorf("sparkplug topic %q: unknown message type %q", topic, lv[2])
	}
	if device && n != 5 {
		return Topic{}, fmt.Errorf("sparkplug topic %q: %s needs a device level", topic, typ)
	}
	if !device && n != 4 {
		return Topic{}, fmt.Errorf("sparkplug topic %q: %s is about the edge node and takes no device level", topic, typ)
	}
	t := Topic{Group: lv[1], Type: typ, Node: lv[3]}
	if device {
		t.Device = lv[4]
	}
	return t, nil
}
