package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// When the disk is (nearly) full nothing is acknowledged: a persistent
// session gets no CONNACK and a QoS 1 message to a persistent subscriber
// no PUBACK; the connection is closed, the error names the data
// directory, and clients that need no write are still served.
func TestE2EDiskFullWithholdsAcks(t *testing.T) {
	b := newBroker(t, Config{MinFreeBytes: 1 << 62}) // more than any disk has
	c, err := tryDialRaw(t, b.addr, v5Connect("persistent", true, 3600))
	if err == nil && c.Type == packets.Connack {
		t.Fatalf("CONNACK %s for a session the store could not write", c.ReasonCode)
	}
	if b.srv.Stats().StoreFailures == 0 {
		t.Error("StoreFailures is 0")
	}
	// A session with no expiry needs no write: it is served.
	q, ack := dialRaw(t, b.addr, v5Connect("transient", true, 0))
	if ack.ReasonCode != packets.Success {
		t.Fatalf("transient client refused: %s", ack.ReasonCode)
	}
	q.subscribe("t", 1)
	q.publish("t", 0, 0, false, "x")
	if p := q.expect(packets.Publish); string(p.Payload) != "x" {
		t.Fatalf("got %q", p.Payload)
	}
	st := b.st
	done := make(chan error, 1)
	st.Apply([]core.StoreOp{{Kind: core.OpSessionPut, ClientID: "x", Expiry: 1}}, func(err error) { done <- err })
	if err := <-done; err == nil || !strings.Contains(err.Error(), b.cfg.Path) || !strings.Contains(err.Error(), "nearly full") {
		t.Fatalf("write on a full disk: %v, want an error naming %s and the cause", err, b.cfg.Path)
	}
}

// tryDialRaw connects and returns the first packet, or the read error.
func tryDialRaw(t *testing.T, addr string, connect *packets.Packet) (*packets.Packet, error) {
	t.Helper()
	c := &raw{t: t, version: connect.ProtocolVersion}
	conn, err := dialTCP(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c.conn = conn
	c.r = newReader(conn, connect.ProtocolVersion)
	connect.Type = packets.Connect
	connect.Connect.ProtocolName = "MQTT"
	c.send(connect)
	return c.tryRead(waitTimeout)
}

// On a real, small file system the store fills it up to its margin and
// then refuses writes with an error naming the directory; the process is
// not stopped (pebble would stop it after a failed log write) and the
// store still closes cleanly. Mounting the file system needs root with
// CAP_SYS_ADMIN, which CI has.
func TestDiskFullOnTmpfs(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=24m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): TestE2EDiskFullWithholdsAcks covers the refusal", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })
	path := filepath.Join(dir, "data")
	st, err := Open(context.Background(), Config{Path: path, MinFreeBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 64<<10)
	var failed error
	for i := range 1000 {
		op := core.StoreOp{Kind: core.OpRetainedPut}
		op.SetMessage(&core.StoredMessage{Message: core.Message{Topic: fmt.Sprintf("big/%d", i), Payload: payload}})
		done := make(chan error, 1)
		st.Apply([]core.StoreOp{op}, func(err error) { done <- err })
		if failed = <-done; failed != nil {
			break
		}
	}
	if failed == nil || !strings.Contains(failed.Error(), path) {
		t.Fatalf("24 MB file system took 64 MB of writes, or failed without naming %s: %v", path, failed)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close after the disk filled: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	counts, err := Check(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatalf("Check after the disk filled: %v", err)
	}
	if counts.Retained == 0 {
		t.Error("no retained message was kept before the disk filled")
	}
}
