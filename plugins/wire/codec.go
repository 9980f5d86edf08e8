package wire

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// Encoded is a message already in protobuf wire format (an EventBatch the
// broker encoded as events happened). Codec sends it as it is, and gives
// Buf back to Pool once gRPC has written it.
type Encoded struct {
	Buf  *[]byte
	Pool mem.BufferPool
}

// Raw receives a message undecoded: Codec hands its bytes to Decode while
// gRPC still holds them, so they must not be kept (copy what is kept), and
// sets Err to what Decode returned. Buf is reused for a message that
// arrived in pieces.
type Raw struct {
	Decode func([]byte) error
	Err    error
	Buf    []byte
}

// Codec is the Observe stream's codec on both sides: Encoded and Raw
// messages go through as bytes, anything else is protobuf. Its name is
// "proto", so that a peer with the default codec reads and writes the
// same messages.
type Codec struct{ proto encoding.CodecV2 }

// NewCodec returns a Codec.
func NewCodec() Codec { return Codec{proto: encoding.GetCodecV2("proto")} }

// Marshal implements encoding.CodecV2.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*Encoded); ok {
		return mem.BufferSlice{mem.NewBuffer(e.Buf, e.Pool)}, nil
	}
	return c.proto.Marshal(v)
}

// Unmarshal implements encoding.CodecV2.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*Raw)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	if len(data) == 1 {
		r.Err = r.Decode(data[0].ReadOnlyData())
		return nil
	}
	r.Buf = r.Buf[:0]
	for _, b := range data {
		r.Buf = append(r.Buf, b.ReadOnlyData()...)
	}
	r.Err = r.Decode(r.Buf)
	return nil
}

// Name implements encoding.CodecV2.
func (Codec) Name() string { return "proto" }
