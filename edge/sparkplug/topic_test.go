package sparkplug

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTopic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Topic
		wantErr string // substring; empty for success
	}{
		{in: "spBv1.0/plant1/NBIRTH/gw7", want: Topic{Group: "plant1", Type: NBIRTH, Node: "gw7"}},
		{in: "spBv1.0/plant1/NDEATH/gw7", want: Topic{Group: "plant1", Type: NDEATH, Node: "gw7"}},
		{in: "spBv1.0/plant1/NDATA/gw7", want: Topic{Group: "plant1", Type: NDATA, Node: "gw7"}},
		{in: "spBv1.0/plant1/NCMD/gw7", want: Topic{Group: "plant1", Type: NCMD, Node: "gw7"}},
		{in: "spBv1.0/plant1/DBIRTH/gw7/pump", want: Topic{Group: "plant1", Type: DBIRTH, Node: "gw7", Device: "pump"}},
		{in: "spBv1.0/plant1/DDEATH/gw7/pump", want: Topic{Group: "plant1", Type: DDEATH, Node: "gw7", Device: "pump"}},
		{in: "spBv1.0/plant1/DDATA/gw7/pump", want: Topic{Group: "plant1", Type: DDATA, Node: "gw7", Device: "pump"}},
		{in: "spBv1.0/plant1/DCMD/gw7/pump", want: Topic{Group: "plant1", Type: DCMD, Node: "gw7", Device: "pump"}},
		{in: "spBv1.0/STATE/scada-1", want: Topic{Type: STATE, HostID: "scada-1"}},

		{in: "spBv1.0/plant1/DDATA/gw7", wantErr: "needs a device"},
		{in: "spBv1.0/plant1/NDATA/gw7/pump", wantErr: "takes no device"},
		{in: "spBv1.0/plant1/XDATA/gw7", wantErr: "unknown message type"},
		{in: "spBv1.0/plant1/ndata/gw7", wantErr: "unknown message type"},
		{in: "spBv1.0/plant1/NDATA", wantErr: "got 3 levels"},
		{in: "spBv1.0/plant1//gw7", wantErr: "level 3 is empty"},
		{in: "spBv1.0/plant1/NDATA/", wantErr: "level 4 is empty"},
		{in: "spBv1.0/+/NDATA/gw7", wantErr: "wildcard"},
		{in: "spBv1.0/plant1/DDATA/gw7/#", wantErr: "wildcard"},
		{in: "spBv1.0/plant1/DDATA/gw7/pump/x", wantErr: "more than 5 levels"},
		{in: "spBv1.0/STATE", wantErr: "exactly one host id"},
		{in: "spBv1.0/STATE/a/b", wantErr: "exactly one host id"},
		{in: "spBv1.0/STATE/", wantErr: "empty"},
		{in: "spAv1.0/plant1/NDATA/gw7", wantErr: "not a Sparkplug B topic"},
		{in: "", wantErr: "not a Sparkplug B topic"},
		{in: "spBv1.0", wantErr: "got 1 levels"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTopic(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseTopic(%q) = %+v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTopic(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseTopic(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if s := got.String(); s != tc.in {
				t.Fatalf("String() = %q, want %q", s, tc.in)
			}
		})
	}
	if _, err := ParseTopic("tele/x/SENSOR"); !errors.Is(err, ErrNotSparkplug) {
		t.Fatalf("foreign topic: %v, want ErrNotSparkplug", err)
	}
}

func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		"spBv1.0/g/NBIRTH/n", "spBv1.0/g/DDATA/n/d", "spBv1.0/STATE/h", "spBv1.0//NDATA/n",
		"spBv1.0/g/DDATA/n/d/e", "spBv1.0/+/NDATA/#", "", "/", "spBv1.0/STATE/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		top, err := ParseTopic(s)
		if err != nil {
			return
		}
		// Whatever is accepted names a well-formed topic and round-trips.
		if back := top.String(); back != s {
			t.Fatalf("ParseTopic(%q).String() = %q", s, back)
		}
		if top.Type == STATE {
			if top.HostID == "" || top.Group != "" || top.Node != "" || top.Device != "" {
				t.Fatalf("STATE topic %q parsed as %+v", s, top)
			}
			return
		}
		_, device, ok := messageType(top.Type)
		if !ok || top.Group == "" || top.Node == "" || device != (top.Device != "") || top.HostID != "" {
			t.Fatalf("topic %q parsed as %+v", s, top)
		}
	})
}
