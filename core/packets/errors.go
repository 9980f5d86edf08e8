package packets

import (
	"errors"
	"fmt"
)

// Error is a decoding or protocol error together with the reason code the
// broker should answer with (in a v5 DISCONNECT or CONNACK; v3 clients are
// simply disconnected).
type Error struct {
	Code ReasonCode // MalformedPacket, ProtocolError, PacketTooLarge, …
	Msg  string     // what was wrong, for logs and reason strings
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Msg)
}

// Is makes errors.Is match any *Error with the same reason code, so callers
// can test errors.Is(err, ErrMalformed).
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code && (t.Msg == "" || t.Msg == e.Msg)
	}
	return false
}

// Sentinels to compare against with errors.Is; they match any *Error with
// the same reason code.
var (
	ErrMalformed      = &Error{Code: MalformedPacket}
	ErrProtocol       = &Error{Code: ProtocolError}
	ErrPacketTooLarge = &Error{Code: PacketTooLarge}
)

// Errorf returns an *Error with the given reason code and formatted message.
func Errorf(code ReasonCode, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the reason code carried by err, or UnspecifiedError when err
// is not (and does not wrap) an *Error.
func CodeOf(err error) ReasonCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return UnspecifiedError
}
