package server

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"connectrpc.com/vanguard"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"

	"github.com/flock-social/flock/server/fieldcheck"
)

// fieldCheckInterceptor runs fieldcheck.Message on every request message of
// every procedure (security.md property 22): the one place where enum
// numbers, NUL bytes, invalid UTF-8 and invisible-only text are handled,
// before the protovalidate rules and the domain see the message.
type fieldCheckInterceptor struct{}

func (fieldCheckInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := checkRequest(req.Any()); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (fieldCheckInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (fieldCheckInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return next(ctx, checkedConn{conn})
	}
}

// checkedConn checks each message it receives.
type checkedConn struct{ connect.StreamingHandlerConn }

func (c checkedConn) Receive(msg any) error {
	if err := c.StreamingHandlerConn.Receive(msg); err != nil {
		return err
	}
	return checkRequest(msg)
}

func checkRequest(msg any) error {
	m, ok := msg.(proto.Message)
	if !ok {
		return nil
	}
	return fieldError(fieldcheck.Message(m.ProtoReflect()))
}

// fieldError turns a fieldcheck.Error into invalid_argument with a
// BadRequest detail naming the field, like protovalidate's violations.
func fieldError(err error) error {
	var fe *fieldcheck.Error
	if !errors.As(err, &fe) {
		return err
	}
	ce := connect.NewError(connect.CodeInvalidArgument, errors.New(fe.Error()))
	if d, derr := connect.NewErrorDetail(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
		Field: fe.Field, Description: fe.Reason,
	}}}); derr == nil {
		ce.AddDetail(d)
	}
	return ce
}

// restJSONCodec is vanguard's JSON codec for REST bodies with the enum-name
// check of fieldcheck in front of it (the names are gone once protojson has
// read them as defaults).
type restJSONCodec struct{ *vanguard.JSONCodec }

func newRESTJSONCodec(res vanguard.TypeResolver) vanguard.Codec {
	return restJSONCodec{vanguard.NewJSONCodec(res)}
}

// Unmarshal reads a REST body. Its errors are the client's (malformed JSON,
// an unknown enum name): invalid_argument, where vanguard would answer 500.
func (c restJSONCodec) Unmarshal(data []byte, msg proto.Message) error {
	if err := fieldcheck.JSONEnums(data, msg.ProtoReflect().Descriptor()); err != nil {
		return fieldError(err)
	}
	if err := c.JSONCodec.Unmarshal(data, msg); err != nil {
		if ferr := clarifyJSONError(err); ferr != err {
			return fieldError(ferr)
		}
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("the request body is not valid JSON for %s: %w", msg.ProtoReflect().Descriptor().Name(), err))
	}
	return nil
}
