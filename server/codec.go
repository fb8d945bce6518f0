package server

import (
	"fmt"
	"regexp"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/flock-social/flock/server/fieldcheck"
)

// jsonCodec is Connect's JSON codec with zero values written out, so a JSON
// client finds `"followersCount": 0` rather than a missing key (proto3 JSON
// leaves zero values out by default). Unset messages stay absent. Vanguard
// passes this JSON through for REST, so both transports answer alike.
//
// It writes with the messages' generated AppendProtoJSON methods
// (tools/protoc-gen-flock-json), protojson's output without its reflection,
// and with protojson for a message that has none. Reading stays protojson's.
type jsonCodec struct{ name string }

var (
	jsonMarshal   = protojson.MarshalOptions{EmitDefaultValues: true}
	jsonUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
)

func (c jsonCodec) Name() string { return c.name }

func (c jsonCodec) Marshal(v any) ([]byte, error) {
	return c.MarshalAppend(nil, v)
}

// MarshalAppend lets Connect marshal into its pooled buffers.
func (c jsonCodec) MarshalAppend(b []byte, v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("json codec: %T is not a proto.Message", v)
	}
	return appendJSON(b, m)
}

// protoJSONAppender is a message with a method of protoc-gen-flock-json.
type protoJSONAppender interface {
	AppendProtoJSON(b []byte) ([]byte, error)
}

// appendJSON appends m's JSON as jsonMarshal writes it (up to white space).
func appendJSON(b []byte, m proto.Message) ([]byte, error) {
	if a, ok := m.(protoJSONAppender); ok {
		return a.AppendProtoJSON(b)
	}
	return jsonMarshal.MarshalAppend(b, m)
}

// marshalJSON is appendJSON into a new slice.
func marshalJSON(m proto.Message) ([]byte, error) {
	return appendJSON(nil, m)
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
	return clarifyJSONError(jsonUnmarshal.Unmarshal(data, m))
}

// oneofAlreadySet finds protojson's refusal of two fields of one oneof.
var oneofAlreadySet = regexp.MustCompile(`oneof ([A-Za-z0-9_.]+)\.([A-Za-z0-9_]+) is already set`)

// clarifyJSONError words protojson's refusal of a body that sets two
// fields of one oneof ("oneof flock.v1.LoginRequest.identifier is already
// set") in the fields a client sends: "identifier: send only one of
// username or email". Other errors pass unchanged.
func clarifyJSONError(err error) error {
	if err == nil {
		return nil
	}
	m := oneofAlreadySet.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	d, ferr := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(m[1]))
	md, ok := d.(protoreflect.MessageDescriptor)
	if ferr != nil || !ok {
		return err
	}
	od := md.Oneofs().ByName(protoreflect.Name(m[2]))
	if od == nil {
		return err
	}
	return &fieldcheck.Error{Field: string(od.Name()), Reason: "send only one of " + fieldcheck.OneofFields(od)}
}

func jsonCodecs() []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithCodec(jsonCodec{name: "json"}),
		connect.WithCodec(jsonCodec{name: "json; charset=utf-8"}),
	}
}
