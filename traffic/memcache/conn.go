package memcache

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
)

// conn is one pooled connection. A request is built in wb and sent by the
// first read of its reply (see connReader), so that a round trip costs one
// write and, usually, one read syscall.
type conn struct {
	nc  net.Conn
	r   *bufio.Reader
	srv *server
	wb  []byte // the request being built
	buf []byte // values larger than the read buffer
	key []byte // the key of the VALUE line being read

	// raw I/O (nil rc: plain net.Conn reads and writes)
	rc      syscall.RawConn
	rawFn   func(fd uintptr) bool
	pending bool   // wb holds a request the next read must send first
	rp      []byte // raw read destination
	rn      int
	rerr    error
	wrote   bool
}

const (
	readBufSize = 64 << 10
	// a request buffer grown past this (a large Set) is not kept
	maxKeptWB = 64 << 10
)

func newConn(nc net.Conn, s *server) *conn {
	cn := &conn{nc: nc, srv: s, wb: make([]byte, 0, 512)}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			cn.rc = rc
			cn.rawFn = cn.rawRead
		}
	}
	cn.r = bufio.NewReaderSize(connReader{cn}, readBufSize)
	return cn
}

// send queues the request in wb. Without raw I/O it is written at once.
func (cn *conn) send() error {
	if cn.r.Buffered() != 0 {
		// a reply to nothing: the stream is out of step
		return &ProtocolError{Line: "unsolicited data before a request"}
	}
	if cn.rc == nil {
		_, err := cn.nc.Write(cn.wb)
		cn.resetWB()
		return err
	}
	cn.pending = true
	return nil
}

func (cn *conn) resetWB() {
	if cap(cn.wb) > maxKeptWB {
		cn.wb = make([]byte, 0, 512)
	} else {
		cn.wb = cn.wb[:0]
	}
}

// connReader feeds cn.r. When a request is pending it writes it from inside
// RawConn.Read: the poller's read readiness is reset before the write, so
// the goroutine can park right after writing instead of first trying a read
// that would fail with EAGAIN (the reply cannot be there yet), and the
// reply's arrival still wakes it. That saves one syscall per round trip, a
// third of the pooled path's syscalls.
type connReader struct{ cn *conn }

func (r connReader) Read(p []byte) (int, error) {
	cn := r.cn
	if !cn.pending {
		return cn.nc.Read(p)
	}
	cn.pending = false
	cn.rp, cn.rn, cn.rerr, cn.wrote = p, 0, nil, false
	err := cn.rc.Read(cn.rawFn)
	cn.rp = nil
	if cn.rerr != nil {
		return 0, cn.rerr
	}
	if err != nil {
		return 0, err
	}
	if cn.rn == 0 {
		return 0, io.EOF
	}
	return cn.rn, nil
}

// rawRead is RawConn.Read's callback (one per conn, so no closure is
// allocated per call). Its first call writes the request through the
// net.Conn (write deadline and partial writes handled there) and asks to
// wait for readability; later calls read.
func (cn *conn) rawRead(fd uintptr) bool {
	if !cn.wrote {
		cn.wrote = true
		_, err := cn.nc.Write(cn.wb)
		cn.resetWB()
		if err != nil {
			cn.rerr = err
			return true
		}
		return false
	}
	for {
		n, err := syscall.Read(int(fd), cn.rp)
		switch err {
		case nil:
			cn.rn = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		cn.rerr = &net.OpError{Op: "read", Net: "tcp", Source: cn.nc.LocalAddr(), Addr: cn.nc.RemoteAddr(), Err: os.NewSyscallError("read", err)}
		return true
	}
}

func (cn *conn) line() ([]byte, error) {
	l, err := cn.r.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return nil, &ProtocolError{Line: string(l[:min(len(l), 64)]) + "..."}
		}
		return nil, err
	}
	if len(l) < 2 || l[len(l)-2] != '\r' {
		return nil, &ProtocolError{Line: string(l)}
	}
	return l[:len(l)-2], nil
}

// data reads a data block of n bytes and its "\r\n"; the slice is valid
// until the next read on cn.
func (cn *conn) data(n int) ([]byte, error) {
	var b []byte
	if n+2 <= cn.r.Size() {
		var err error
		if b, err = cn.r.Peek(n + 2); err != nil {
			return nil, err
		}
		_, _ = cn.r.Discard(n + 2)
	} else {
		if cap(cn.buf) < n+2 {
			cn.buf = make([]byte, n+2)
		}
		b = cn.buf[:n+2]
		if _, err := io.ReadFull(cn.r, b); err != nil {
			return nil, err
		}
	}
	if b[n] != '\r' || b[n+1] != '\n' {
		return nil, &ProtocolError{Line: "data block of " + strconv.Itoa(n) + " bytes not ended by \\r\\n"}
	}
	return b[:n], nil
}

var (
	bEND   = []byte("END")
	bVALUE = []byte("VALUE ")
	bEN    = []byte("EN")
	bVA    = []byte("VA ")
	bHD    = []byte("HD")
)

func checkErrorLine(l []byte) error {
	if bytes.HasPrefix(l, []byte("ERROR")) || bytes.HasPrefix(l, []byte("CLIENT_ERROR")) || bytes.HasPrefix(l, []byte("SERVER_ERROR")) {
		return &ServerError{Line: string(l)}
	}
	return &ProtocolError{Line: string(l)}
}

// field returns the space-separated token of l at i and the index after it.
func field(l []byte, i int) ([]byte, int) {
	for i < len(l) && l[i] == ' ' {
		i++
	}
	j := i
	for j < len(l) && l[j] != ' ' {
		j++
	}
	return l[i:j], j
}

// atoi parses a non-negative decimal; -1 if b is not one.
func atoi(b []byte) int {
	if len(b) == 0 || len(b) > 10 {
		return -1
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// readValues reads VALUE blocks until END, calling fn for each. key and
// value are only valid during fn.
func (cn *conn) readValues(fn func(key, val []byte)) error {
	for {
		l, err := cn.line()
		if err != nil {
			return err
		}
		if bytes.Equal(l, bEND) {
			return nil
		}
		if !bytes.HasPrefix(l, bVALUE) {
			return checkErrorLine(l)
		}
		// VALUE <key> <flags> <bytes> [<cas>]
		key, i := field(l, len(bVALUE))
		flags, i := field(l, i)
		size, _ := field(l, i)
		n := atoi(size)
		if len(key) == 0 || atoi(flags) < 0 || n < 0 {
			return &ProtocolError{Line: string(l)}
		}
		// the line's bytes may be overwritten by reading the data block
		cn.key = append(cn.key[:0], key...)
		v, err := cn.data(n)
		if err != nil {
			return err
		}
		fn(cn.key, v)
	}
}

func (cn *conn) readMeta() (MetaResult, error) {
	l, err := cn.line()
	if err != nil {
		return MetaResult{}, err
	}
	return cn.parseMeta(l)
}

// parseMeta parses a meta get reply line (and reads its value).
func (cn *conn) parseMeta(l []byte) (MetaResult, error) {
	r := MetaResult{TTL: -1}
	size := -1
	var i int
	switch {
	case bytes.Equal(l, bEN):
		return r, nil
	case bytes.HasPrefix(l, bVA):
		var s []byte
		s, i = field(l, len(bVA))
		if size = atoi(s); size < 0 {
			return r, &ProtocolError{Line: string(l)}
		}
	case bytes.Equal(l, bHD) || bytes.HasPrefix(l, []byte("HD ")):
		i = len(bHD)
	default:
		return r, checkErrorLine(l)
	}
	r.Found = true
	for {
		var t []byte
		t, i = field(l, i)
		if len(t) == 0 {
			break
		}
		switch t[0] {
		case 'W':
			r.Won = true
		case 'X':
			r.Stale = true
		case 'Z':
			r.Contended = true
		case 't':
			if string(t[1:]) == "-1" {
				r.TTL = -1
			} else if r.TTL = atoi(t[1:]); r.TTL < 0 {
				return r, &ProtocolError{Line: string(l)}
			}
		}
	}
	if size >= 0 {
		v, err := cn.data(size)
		if err != nil {
			return r, err
		}
		r.Value = v
	}
	return r, nil
}
