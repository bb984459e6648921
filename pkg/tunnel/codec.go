package tunnel

import (
	"fmt"
	"io"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
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

// Unmarshal decodes a data message, nearly every message of a busy flow,
// straight into a BufferSize array from the pool (if larger than 32 KiB),
// which Release gives back: one copy and no allocation, where protobuf
// copies the bytes once more into a new slice, and that garbage drove most
// of the daemon's GC. pprof of a
// bulk download: decoding 17% of the daemon's CPU, GC 11%. Other messages
// take protobuf's path.
func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*teleproto.Frame); ok && unmarshalData(data, m) {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("tunnel codec: cannot unmarshal into %T, want a proto.Message", v)
	}
	buf := data.MaterializeToBuffer(BufferPool)
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// dataField is Frame's data field.
var dataField = (&teleproto.Frame{}).ProtoReflect().Descriptor().Fields().ByName("data").Number()

// unmarshalData decodes data into m if it is exactly one data field of at
// most BufferSize bytes, and reports whether it did.
func unmarshalData(data mem.BufferSlice, m *teleproto.Frame) bool {
	var head [16]byte // a tag and a length: at most 15 bytes
	n := data.CopyTo(head[:])
	num, typ, tagLen := protowire.ConsumeTag(head[:n])
	if tagLen < 0 || num != dataField || typ != protowire.BytesType {
		return false
	}
	size, sizeLen := protowire.ConsumeVarint(head[tagLen:n])
	if sizeLen < 0 || size > BufferSize || uint64(data.Len()-tagLen-sizeLen) != size {
		return false
	}
	// A small message gets a slice of its own size: a pooled array would
	// hold 128 KiB for the few bytes of a request while it waits to be read.
	var b []byte
	var pooled *[BufferSize]byte
	if size <= pooledDataMin {
		b = make([]byte, size)
	} else {
		pooled = bufPool.Get().(*[BufferSize]byte)
		b = pooled[:size]
	}
	r := data.Reader()
	defer r.Close()
	_, err := r.Discard(tagLen + sizeLen)
	if err == nil {
		_, err = io.ReadFull(r, b)
	}
	if err != nil {
		if pooled != nil {
			bufPool.Put(pooled)
		}
		return false
	}
	proto.Reset(m)
	m.Msg = &teleproto.Frame_Data{Data: b}
	return true
}

// pooledDataMin is the size above which data messages decode into pooled
// arrays.
const pooledDataMin = 32 << 10

// Release gives the buffer of a received data message back to the pool once
// its bytes are no longer used; m's data is gone after. Call it only where
// nothing else can still hold the bytes (not after handing them to code that
// may keep them); a message not released is simply garbage-collected.
func Release(m *teleproto.Frame) {
	d, ok := m.GetMsg().(*teleproto.Frame_Data)
	if !ok || cap(d.Data) != BufferSize {
		return
	}
	buf := (*[BufferSize]byte)(d.Data[:BufferSize])
	d.Data = nil
	bufPool.Put(buf)
}
