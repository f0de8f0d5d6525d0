package format

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTripAndSignatures(t *testing.T) {
	for _, v := range []Version{Legacy, Current} {
		e := Entry{Version: v, ExpiresAt: 1_700_000_000_123, FillMillis: 7, RowVersion: 3, Payload: []byte("payload")}
		b, err := Encode(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		want := []byte{0x04, 0x08}
		if v == Current {
			want = []byte{0x00, 0x11, 0x00}
		}
		if !bytes.HasPrefix(b, want) {
			t.Errorf("%v: header % x, want prefix % x", v, b[:4], want)
		}
		got, err := Reader{Version: v}.Decode(b)
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		if got.ExpiresAt != e.ExpiresAt || got.FillMillis != 7 || got.RowVersion != 3 || string(got.Payload) != "payload" || got.Version != v {
			t.Errorf("%v: round trip = %+v", v, got)
		}
	}
}

// Rails' compatibility: 7.0 reads 6.1 entries, 6.1 misses on 7.0 ones
// unless it reads both (the dual-read protection).
func TestForeignFormatMissesUnlessCompatible(t *testing.T) {
	legacy, _ := Encode(nil, Entry{Version: Legacy, Payload: []byte("x")})
	current, _ := Encode(nil, Entry{Version: Current, Payload: []byte("x")})
	if e, err := (Reader{Version: Current}).Decode(legacy); err != nil || e.Version != Legacy || string(e.Payload) != "x" {
		t.Errorf("current reader on legacy entry: %+v, %v; want it decoded", e, err)
	}
	if _, err := (Reader{Version: Legacy}).Decode(current); !errors.Is(err, ErrForeign) {
		t.Errorf("legacy reader on current entry: %v, want ErrForeign", err)
	}
	for _, b := range [][]byte{legacy, current} {
		for _, v := range []Version{Legacy, Current} {
			if _, err := (Reader{Version: v, Compatible: true}).Decode(b); err != nil {
				t.Errorf("compatible %v reader: %v", v, err)
			}
		}
	}
}

func TestCorrupt(t *testing.T) {
	for _, b := range [][]byte{nil, {0x01}, {0x04, 0x08, 1, 2}, []byte("hello world, no header")} {
		if _, err := (Reader{Version: Legacy, Compatible: true}).Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Decode(% x) = %v, want ErrCorrupt", b, err)
		}
	}
	if _, err := Encode(nil, Entry{Version: 99}); err == nil {
		t.Error("unknown version: want error")
	}
}

func TestParse(t *testing.T) {
	for s, want := range map[string]Version{"legacy": Legacy, "6.1": Legacy, "current": Current, "7.0": Current} {
		if v, err := Parse(s); err != nil || v != want {
			t.Errorf("Parse(%q) = %v, %v", s, v, err)
		}
	}
	if _, err := Parse("7.1"); err == nil {
		t.Error("Parse(7.1): want error")
	}
}
