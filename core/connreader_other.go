//go:build !linux

package core

// Arrived is the number of bytes that can be read without waiting: here,
// those buffered (the socket is not asked). See the Linux version.
func (cr *connReader) Arrived() int { return cr.buffered() }
