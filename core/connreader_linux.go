package core

import "golang.org/x/sys/unix"

// Arrived is the number of bytes that can be read without waiting: those
// buffered and those waiting in the socket's receive queue (SIOCINQ). The
// packet reader sizes a large body by it (packets.arrivedSource): bytes
// the client has sent, so it holds no more than what was sent.
func (cr *connReader) Arrived() int {
	n := cr.buffered()
	if cr.raw == nil {
		return n
	}
	var queued int
	_ = cr.raw.Control(func(fd uintptr) {
		q, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err == nil && q > 0 {
			queued = q
		}
	})
	return n + queued
}
