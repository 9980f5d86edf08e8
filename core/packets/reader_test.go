package packets

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// dripSource serves its data at most step bytes per Read, as a slow
// client's bytes arrive.
type dripSource struct {
	data []byte
	step int
}

func (d *dripSource) Read(p []byte) (int, error) {
	if len(d.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, d.data[:min(d.step, len(d.data))])
	d.data = d.data[n:]
	return n, nil
}

// recordingReader reports, before each Read, the body bytes read so far
// and the room offered.
type recordingReader struct {
	r      *bufio.Reader
	read   int
	onRead func(read, room int)
}

func (r *recordingReader) Read(p []byte) (int, error) {
	r.onRead(r.read, len(p))
	n, err := r.r.Read(p)
	r.read += n
	return n, err
}

func (r *recordingReader) Peek(n int) ([]byte, error) { return r.r.Peek(n) }

// A body larger than a few KiB is allocated as its bytes arrive: a client
// that declares a 1 MiB PUBLISH and sends little of it makes the Reader
// hold about what it sent (at most twice, and 2*bodyChunk), not what it
// declared.
func TestReadBodyGrowsAsBytesArrive(t *testing.T) {
	const size = 1 << 20
	for _, step := range []int{1, 100, 4096, 5000, 1 << 16} {
		body := bytes.Repeat([]byte{'x'}, size)
		var first int
		src := &recordingReader{r: bufio.NewReaderSize(&dripSource{data: body, step: step}, 16), onRead: func(read, room int) {
			if read == 0 {
				first = room
			}
			if limit := growFactor*read + 2*bodyChunk; read+room > limit {
				t.Fatalf("step %d: holding %d bytes after %d arrived (limit %d)", step, read+room, read, limit)
			}
		}}
		got, err := readBody(src, size)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if !bytes.Equal(got, body) || cap(got) != size {
			t.Fatalf("step %d: body of %d bytes (cap %d), want the %d sent, cap %d", step, len(got), cap(got), size, size)
		}
		if first > bodyChunk {
			t.Errorf("step %d: %d bytes allocated before any arrived, want at most %d", step, first, bodyChunk)
		}
	}
	// Nothing is allocated for a body none of whose bytes has come.
	src := &recordingReader{r: bufio.NewReaderSize(&dripSource{}, 16), onRead: func(read, room int) {
		t.Fatalf("a Read into %d bytes of body, though no byte of it arrived", room)
	}}
	if _, err := readBody(src, size); err != io.ErrUnexpectedEOF {
		t.Fatalf("no body: %v, want io.ErrUnexpectedEOF", err)
	}
}

// arrivedReader is a recordingReader that tells how much has arrived, as
// the broker's connection reader does.
type arrivedReader struct {
	*recordingReader
	arrived func() int
}

func (a arrivedReader) Arrived() int { return a.arrived() }

// A body whose bytes have all arrived is allocated once, at its size; one
// of which a part has arrived, at that part.
func TestReadBodySizedByArrived(t *testing.T) {
	const size = 1 << 20
	for _, tc := range []struct {
		name    string
		arrived int
		want    int // the first allocation
	}{
		{"all arrived", size, size},
		{"a third arrived", size / 3, size / 3},
		{"less than a chunk", 100, bodyChunk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte{'y'}, size)
			var first int
			rec := &recordingReader{r: bufio.NewReaderSize(&dripSource{data: data, step: 1 << 16}, 16), onRead: func(read, room int) {
				if read == 0 {
					first = room
				}
			}}
			got, err := readBody(arrivedReader{rec, func() int { return max(0, tc.arrived-rec.read) }}, size)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("body of %d bytes, %v", len(got), err)
			}
			if first != tc.want {
				t.Errorf("first allocation %d bytes, want %d", first, tc.want)
			}
		})
	}
}

// Large packets decode the same however their bytes arrive, and a body
// cut short is io.ErrUnexpectedEOF.
func TestReadPacketLargeBodiesInPieces(t *testing.T) {
	pub := &Packet{Type: Publish, QoS: 1, PacketID: 7, Topic: "a/b", Payload: bytes.Repeat([]byte("p"), 300_000), ProtocolVersion: Version5}
	sub := &Packet{Type: Subscribe, PacketID: 9, ProtocolVersion: Version5,
		Subscriptions: []Subscription{{Filter: strings.Repeat("f", 9000), QoS: 1}}}
	for _, p := range []*Packet{pub, sub} {
		wire := encode(t, p)
		for _, step := range []int{1, 7, 4096, 70_000} {
			r := NewReader(bufio.NewReaderSize(&dripSource{data: wire, step: step}, 4096), 0)
			r.SetVersion(Version5)
			var got Packet
			if err := r.ReadPacket(&got); err != nil {
				t.Fatalf("%s in steps of %d: %v", p.Type, step, err)
			}
			if !bytes.Equal(encode(t, &got), wire) {
				t.Fatalf("%s in steps of %d: decoded differently", p.Type, step)
			}
		}
		r := NewReader(bufio.NewReader(bytes.NewReader(wire[:len(wire)-1])), 0)
		r.SetVersion(Version5)
		var got Packet
		if err := r.ReadPacket(&got); err != io.ErrUnexpectedEOF {
			t.Errorf("%s cut short: %v, want io.ErrUnexpectedEOF", p.Type, err)
		}
	}
}

// A CONNECT over the maximum size is refused before its body is read; its
// protocol level is reported when it came with the fixed header, so that
// an MQTT 5 client can get CONNACK 0x95 [MQTT-3.2.2-8], and not waited for
// when it did not.
func TestOversizedConnectVersion(t *testing.T) {
	head := []byte{0x10, 0xfa, 0xff, 0x3f} // CONNECT, 1 MiB declared
	for _, tc := range []struct {
		name string
		rest []byte
		want byte
	}{
		{"MQTT 5", []byte("\x00\x04MQTT\x05\x02"), Version5},
		{"MQTT 3.1.1", []byte("\x00\x04MQTT\x04\x02"), Version311},
		{"nothing after the header", nil, 0},
		{"not MQTT", []byte("\x00\x04HTTP\x05\x02"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bufio.NewReader(bytes.NewReader(append(head, tc.rest...))), 1024)
			var p Packet
			err := r.ReadPacket(&p)
			var perr *Error
			if !errors.As(err, &perr) || perr.Code != PacketTooLarge {
				t.Fatalf("err %v, want PacketTooLarge", err)
			}
			if p.ProtocolVersion != tc.want {
				t.Errorf("version %d, want %d", p.ProtocolVersion, tc.want)
			}
		})
	}
}
