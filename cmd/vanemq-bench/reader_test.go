package main

import (
	"bufio"
	"testing"

	"github.com/vanemq/vanemq/core/packets"
)

// repeatReader reads the same bytes over and over.
type repeatReader struct {
	b   []byte
	off int
}

// Read fills p with the bytes, from where the last read stopped.
func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], r.b[r.off:])
		n += k
		r.off = (r.off + k) % len(r.b)
	}
	return n, nil
}

// TestHotPathAllocs checks that neither a publisher's batch nor a
// subscriber's delivery (with its acknowledgement) allocates.
func TestHotPathAllocs(t *testing.T) {
	for _, v := range []byte{4, 5} {
		tmpl, err := newPublishTemplate("bench/x", 1, v, 64)
		if err != nil {
			t.Fatal(err)
		}
		batch := make([]byte, 0, 64*len(tmpl.b))
		if n := testing.AllocsPerRun(100, func() {
			batch = batch[:0]
			for i := range 64 {
				batch = tmpl.appendTo(batch, uint16(i+1), 12345)
			}
		}); n != 0 {
			t.Errorf("v%d: building a batch allocates %v times", v, n)
		}

		clock := newMonoClock()
		c := &mqttConn{tr: timedReader{r: &repeatReader{b: tmpl.b}, clock: clock}, version: v, clock: clock, sink: newSubStats(0, 1<<62)}
		c.br = bufio.NewReaderSize(&c.tr, subReadBuf)
		c.rd = packets.NewReader(c.br, 0)
		c.ack.ProtocolVersion = v
		if n := testing.AllocsPerRun(1000, func() {
			if err := c.readOne(); err != nil {
				t.Fatal(err)
			}
			c.out.Reset()
		}); n != 0 {
			t.Errorf("v%d: a QoS 1 delivery allocates %v times", v, n)
		}
		if c.sink.all < 1000 || c.sink.stamped != c.sink.all {
			t.Errorf("v%d: %d deliveries, %d in the window; want over 1000, all", v, c.sink.all, c.sink.stamped)
		}
	}
}
