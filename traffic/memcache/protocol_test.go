package memcache

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// Reply parsing, on a conn reading from a fixed byte stream.

func replyConn(s string) *conn {
	return &conn{r: bufio.NewReaderSize(strings.NewReader(s), 4096)}
}

type item struct{ key, val string }

func readAll(t *testing.T, reply string) ([]item, error) {
	t.Helper()
	var got []item
	err := replyConn(reply).readValues(func(k, v []byte) { got = append(got, item{string(k), string(v)}) })
	return got, err
}

func TestReadValues(t *testing.T) {
	got, err := readAll(t, "VALUE a 0 5\r\nhello\r\nVALUE bb 42 2 99\r\nhi\r\nVALUE c 0 0\r\n\r\nEND\r\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []item{{"a", "hello"}, {"bb", "hi"}, {"c", ""}}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("item %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

func TestReadValuesEmpty(t *testing.T) {
	got, err := readAll(t, "END\r\n")
	if err != nil || len(got) != 0 {
		t.Fatalf("got %q, %v; want nothing, nil", got, err)
	}
}

// A value larger than the read buffer goes through the conn's own buffer,
// and the key read before it must survive the buffer being refilled.
func TestReadValuesLargerThanBuffer(t *testing.T) {
	big := strings.Repeat("x", 3*4096+17)
	got, err := readAll(t, "VALUE bigkey 0 12305\r\n"+big+"\r\nVALUE small 0 1\r\ny\r\nEND\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].key != "bigkey" || got[0].val != big || got[1] != (item{"small", "y"}) {
		t.Fatalf("got %d items, first key %q len %d", len(got), got[0].key, len(got[0].val))
	}
}

func TestReadValuesErrors(t *testing.T) {
	for _, tc := range []struct {
		name, reply string
		server      bool // a *ServerError, else a *ProtocolError unless eof
		eof         bool
	}{
		{"server error", "SERVER_ERROR out of memory\r\n", true, false},
		{"client error", "CLIENT_ERROR bad command line format\r\n", true, false},
		{"error", "ERROR\r\n", true, false},
		{"garbage line", "HELLO\r\n", false, false},
		{"no CR", "END\n", false, false},
		{"bad size", "VALUE k 0 five\r\nhello\r\nEND\r\n", false, false},
		{"negative size", "VALUE k 0 -1\r\nEND\r\n", false, false},
		{"bad flags", "VALUE k x 1\r\na\r\nEND\r\n", false, false},
		{"missing size", "VALUE k 0\r\nEND\r\n", false, false},
		{"block not ended by CRLF", "VALUE k 0 5\r\nhelloXXEND\r\n", false, false},
		{"truncated block", "VALUE k 0 5\r\nhel", false, true},
		{"truncated line", "VALUE k 0 5", false, true},
		{"no END", "VALUE k 0 1\r\na\r\n", false, true},
		{"error after a value", "VALUE k 0 1\r\na\r\nSERVER_ERROR busy\r\n", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAll(t, tc.reply)
			var se *ServerError
			var pe *ProtocolError
			switch {
			case err == nil:
				t.Fatal("no error")
			case tc.server && !errors.As(err, &se):
				t.Fatalf("got %T %v, want *ServerError", err, err)
			case tc.eof && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
				t.Fatalf("got %T %v, want EOF", err, err)
			case !tc.server && !tc.eof && !errors.As(err, &pe):
				t.Fatalf("got %T %v, want *ProtocolError", err, err)
			}
			if tc.server && !strings.HasPrefix(tc.reply, "VALUE") && se.Line != strings.TrimSuffix(tc.reply, "\r\n") {
				t.Errorf("ServerError.Line = %q", se.Line)
			}
		})
	}
}

func TestReadMeta(t *testing.T) {
	for _, tc := range []struct {
		name, reply string
		want        MetaResult
		val         string
	}{
		{"miss", "EN\r\n", MetaResult{TTL: -1}, ""},
		{"hit", "VA 3\r\nabc\r\n", MetaResult{Found: true, TTL: -1}, "abc"},
		{"hit with ttl", "VA 2 t59\r\nhi\r\n", MetaResult{Found: true, TTL: 59}, "hi"},
		{"no ttl", "VA 2 t-1\r\nhi\r\n", MetaResult{Found: true, TTL: -1}, "hi"},
		{"lease won", "VA 0 W t3\r\n\r\n", MetaResult{Found: true, Won: true, TTL: 3}, ""},
		{"lease contended", "VA 0 Z t3\r\n\r\n", MetaResult{Found: true, Contended: true, TTL: 3}, ""},
		{"stale and won", "VA 1 X W\r\nv\r\n", MetaResult{Found: true, Stale: true, Won: true, TTL: -1}, "v"},
		{"stale contended", "VA 1 W X Z t0\r\nv\r\n", MetaResult{Found: true, Won: true, Stale: true, Contended: true, TTL: 0}, "v"},
		{"header only", "HD\r\n", MetaResult{Found: true, TTL: -1}, ""},
		{"header with flags", "HD W Z\r\n", MetaResult{Found: true, Won: true, Contended: true, TTL: -1}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cn := replyConn(tc.reply + "EN\r\n")
			r, err := cn.readMeta()
			if err != nil {
				t.Fatal(err)
			}
			if string(r.Value) != tc.val {
				t.Errorf("value %q, want %q", r.Value, tc.val)
			}
			if r.Found != tc.want.Found || r.Won != tc.want.Won || r.Stale != tc.want.Stale ||
				r.Contended != tc.want.Contended || r.TTL != tc.want.TTL {
				t.Errorf("got %+v, want %+v", r, tc.want)
			}
			// the stream stays in step: the next reply is read whole
			if r2, err := cn.readMeta(); err != nil || r2.Found {
				t.Errorf("next reply: %+v, %v; want a miss", r2, err)
			}
		})
	}
}

func TestReadMetaErrors(t *testing.T) {
	for _, tc := range []struct {
		name, reply string
		server      bool
	}{
		{"server error", "SERVER_ERROR out of memory\r\n", true},
		{"client error", "CLIENT_ERROR bad command line format\r\n", true},
		{"error", "ERROR\r\n", true},
		{"bad size", "VA x\r\n", false},
		{"missing size", "VA \r\n", false},
		{"bad ttl", "VA 1 tX\r\nv\r\n", false},
		{"unknown reply", "NF\r\n", false},
		{"prefix only", "ENX\r\n", false},
		{"block not ended by CRLF", "VA 1\r\nvvv\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := replyConn(tc.reply).readMeta()
			var se *ServerError
			var pe *ProtocolError
			if tc.server && !errors.As(err, &se) {
				t.Fatalf("got %T %v, want *ServerError", err, err)
			}
			if !tc.server && !errors.As(err, &pe) {
				t.Fatalf("got %T %v, want *ProtocolError", err, err)
			}
		})
	}
}

func TestValidKey(t *testing.T) {
	for k, want := range map[string]bool{
		"a": true, "IDC:8:blob:Record:1a2b3c4d:42": true, strings.Repeat("k", 250): true,
		"": false, strings.Repeat("k", 251): false, "a b": false, "a\r\nflush_all": false, "a\x00": false, "a\x7f": false,
	} {
		if got := validKey(k); got != want {
			t.Errorf("validKey(%q) = %v, want %v", k, got, want)
		}
	}
}
