package server

import (
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/flock-social/flock/server/fieldcheck"
)

// jsonCodec is Connect's JSON codec with zero values written out, so a JSON
// client finds `"followersCount": 0` rather than a missing key (proto3 JSON
// leaves zero values out by default). Unset messages stay absent. Vanguard
// passes this JSON through for REST, so both transports answer alike.
type jsonCodec struct{ name string }

var (
	jsonMarshal   = protojson.MarshalOptions{EmitDefaultValues: true}
	jsonUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
)

func (c jsonCodec) Name() string { return c.name }

func (c jsonCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("json codec: %T is not a proto.Message", v)
	}
	return jsonMarshal.Marshal(m)
}

func (c jsonCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("json codec: %T is not a proto.Message", v)
	}
	if len(data) == 0 {
		// An empty body is an empty message, as for Connect's own codec.
		proto.Reset(m)
		return nil
	}
	// Unknown fields are ignored on purpose, but an unknown enum name is
	// refused (protojson would read it as the default).
	if err := fieldcheck.JSONEnums(data, m.ProtoReflect().Descriptor()); err != nil {
		return err
	}
	return jsonUnmarshal.Unmarshal(data, m)
}

func jsonCodecs() []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithCodec(jsonCodec{name: "json"}),
		connect.WithCodec(jsonCodec{name: "json; charset=utf-8"}),
	}
}
