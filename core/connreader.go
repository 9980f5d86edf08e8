package core

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
)

// readBufSize is the size of a connection's read buffer while it is busy.
const readBufSize = 4096

// connReader is the buffered reader of one connection (a packets.Source).
// An idle connection holds no read buffer: it waits for data in a small
// array of its own, and takes a pooled buffer only while bytes keep coming.
// When the buffer drains it tries one non-blocking read; if nothing is
// waiting, the buffer goes back to the pool before the blocking read. So a
// busy connection reads in large chunks and an idle one costs a few dozen
// bytes.
type connReader struct {
	conn net.Conn
	raw  syscall.RawConn // nil when the connection has no file descriptor
	pool *sync.Pool      // of *[]byte, readBufSize each

	big   *[]byte // the pooled buffer, nil while idle
	buf   []byte  // small[:] or *big
	r, w  int     // unread bytes are buf[r:w]
	err   error   // sticky read error
	small [64]byte
}

func newConnReader(c net.Conn, pool *sync.Pool) *connReader {
	cr := &connReader{conn: c, pool: pool}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			cr.raw = raw
		}
	}
	cr.buf = cr.small[:]
	return cr
}

// Size is the largest Peek the reader serves.
func (cr *connReader) Size() int { return readBufSize }

// release returns the pooled buffer (if empty) when the connection ends.
func (cr *connReader) release() {
	if cr.big != nil {
		cr.pool.Put(cr.big)
		cr.big = nil
		cr.buf = cr.small[:]
		cr.r, cr.w = 0, 0
	}
}

// grow moves the unread bytes into the pooled buffer.
func (cr *connReader) grow() {
	if cr.big != nil {
		return
	}
	cr.big = cr.pool.Get().(*[]byte)
	n := copy(*cr.big, cr.buf[cr.r:cr.w])
	cr.buf = *cr.big
	cr.r, cr.w = 0, n
}

// fill reads more bytes into the buffer; it blocks until at least one
// arrives. want is how many unread bytes the caller needs: a drained
// buffer stays pooled when want exceeds the small array.
func (cr *connReader) fill(want int) error {
	if cr.err != nil {
		return cr.err
	}
	if cr.r == cr.w {
		cr.r, cr.w = 0, 0
		if cr.big != nil {
			if n := cr.tryRead(); n > 0 {
				cr.w = n
				return nil
			}
			if cr.err != nil {
				return cr.err
			}
			if want <= len(cr.small) {
				// Nothing waiting: idle until the next packet.
				cr.pool.Put(cr.big)
				cr.big = nil
				cr.buf = cr.small[:]
			}
		}
	} else if cr.w == len(cr.buf) {
		if cr.big == nil {
			cr.grow()
		} else {
			n := copy(cr.buf, cr.buf[cr.r:cr.w])
			cr.r, cr.w = 0, n
		}
	}
	n, err := cr.conn.Read(cr.buf[cr.w:])
	cr.w += n
	if err != nil {
		cr.err = err
		if n > 0 {
			return nil
		}
		return err
	}
	return nil
}

// tryRead reads what is already waiting on the socket without blocking; it
// returns 0 when nothing is (or when the connection cannot do it).
func (cr *connReader) tryRead() int {
	if cr.raw == nil {
		return 0
	}
	var (
		n    int
		rerr error
	)
	err := cr.raw.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), cr.buf)
		return true // one attempt: never wait
	})
	switch {
	case err != nil:
		return 0 // deadline or closed: the blocking read will say
	case errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EINTR):
		return 0
	case rerr != nil:
		cr.err = rerr
		return 0
	case n == 0:
		cr.err = io.EOF
		return 0
	}
	return n
}

// ReadByte implements io.ByteReader.
func (cr *connReader) ReadByte() (byte, error) {
	for cr.r == cr.w {
		if err := cr.fill(1); err != nil {
			return 0, err
		}
	}
	b := cr.buf[cr.r]
	cr.r++
	return b, nil
}

// Read implements io.Reader: buffered bytes first; a large read with
// nothing buffered goes straight from the connection into p.
func (cr *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if cr.r == cr.w {
		if cr.err != nil {
			return 0, cr.err
		}
		if len(p) >= readBufSize {
			n, err := cr.conn.Read(p)
			if err != nil {
				cr.err = err
			}
			return n, err
		}
		if len(p) > len(cr.small) {
			cr.grow()
		}
		if err := cr.fill(len(p)); err != nil {
			return 0, err
		}
	}
	n := copy(p, cr.buf[cr.r:cr.w])
	cr.r += n
	return n, nil
}

// Peek returns the next n bytes without consuming them.
func (cr *connReader) Peek(n int) ([]byte, error) {
	if n > readBufSize {
		return nil, errors.New("connreader: peek larger than the buffer")
	}
	if cr.r == cr.w {
		// Drained: start again at the front, so a short Peek of an idle
		// connection waits in the small array, not in a pooled buffer.
		cr.r, cr.w = 0, 0
	}
	if n > len(cr.buf)-cr.r {
		cr.grow()
		if n > len(cr.buf)-cr.r {
			k := copy(cr.buf, cr.buf[cr.r:cr.w])
			cr.r, cr.w = 0, k
		}
	}
	for cr.w-cr.r < n {
		if err := cr.fill(n); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return cr.buf[cr.r : cr.r+n], nil
}

// Discard skips the next n bytes, which must be buffered (after Peek).
func (cr *connReader) Discard(n int) (int, error) {
	if n > cr.w-cr.r {
		n = cr.w - cr.r
	}
	cr.r += n
	return n, nil
}

// wait blocks until at least one byte is buffered.
func (cr *connReader) wait() error {
	if cr.r < cr.w {
		return nil
	}
	return cr.fill(1)
}

// buffered is the number of bytes read but not yet consumed.
func (cr *connReader) buffered() int { return cr.w - cr.r }

// Buffered is buffered, for packets.Reader (as *bufio.Reader has it).
func (cr *connReader) Buffered() int { return cr.buffered() }
