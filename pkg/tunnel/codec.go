package tunnel

import (
	"fmt"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Codec is gRPC's proto codec with its buffers taken from BufferPool. gRPC's
// own codec (encoding/proto) marshals and materializes every message above
// 1 KiB in a buffer of mem.DefaultBufferPool, which for a data message of
// BufferSize is a 1 MiB buffer cleared on each Get; a connection's buffer
// pool option does not reach it. Give it to both ends of a connection:
// grpc.WithDefaultCallOptions(grpc.ForceCodecV2(tunnel.Codec)) and
// grpc.ForceServerCodecV2(tunnel.Codec). It speaks the same wire format and
// name as gRPC's, so either end may use the stock codec.
var Codec codec

type codec struct{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("tunnel codec: cannot marshal %T, want a proto.Message", v)
	}
	// Size, then UseCachedSize: as gRPC's codec does, sound while nobody
	// changes the message concurrently.
	size := proto.Size(m)
	opts := proto.MarshalOptions{UseCachedSize: true}
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	buf := BufferPool.Get(size)
	if _, err := opts.MarshalAppend((*buf)[:0], m); err != nil {
		BufferPool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, BufferPool)}, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("tunnel codec: cannot unmarshal into %T, want a proto.Message", v)
	}
	buf := data.MaterializeToBuffer(BufferPool)
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}
