package testutil

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Transport is one way into the API. Every RPC test runs over each of them
// through Call, so one scenario proves a feature on every transport.
type Transport string

// The transports Flock serves.
const (
	Connect Transport = "connect" // Connect protocol, JSON
	GRPC    Transport = "grpc"    // gRPC over h2c, binary
	GRPCWeb Transport = "grpcweb" // gRPC-Web, binary
	REST    Transport = "rest"    // the /api/ paths of the google.api.http annotations, JSON
)

// Transports lists every transport, for table tests.
var Transports = []Transport{Connect, GRPC, GRPCWeb, REST}

// Call invokes a unary RPC by its procedure ("/flock.v1.UserService/Login")
// over tr as the holder of token ("" for anonymous). A failure of any
// transport comes back as a *connect.Error with the code the client saw: for
// REST the HTTP status and google.rpc.Status body are mapped back, and the
// response is checked to be the JSON that Connect's own codec would accept.
func Call[Res any, ResPtr interface {
	*Res
	proto.Message
}](ctx context.Context, s *Server, tr Transport, procedure, token string, req proto.Message) (ResPtr, error) {
	if tr == REST {
		res := ResPtr(new(Res))
		return res, s.callREST(ctx, procedure, token, req, res)
	}
	var opts []connect.ClientOption
	switch tr {
	case Connect:
		opts = append(opts, connect.WithProtoJSON())
	case GRPC:
		opts = append(opts, connect.WithGRPC())
	case GRPCWeb:
		opts = append(opts, connect.WithGRPCWeb())
	default:
		return nil, fmt.Errorf("unknown transport %q", tr)
	}
	hc := s.HTTP
	if tr == GRPC {
		hc = s.H2C
	}
	client := connect.NewClient[anyMessage, Res](hc, s.URL+procedure, opts...)
	creq := connect.NewRequest(&anyMessage{req})
	if token != "" {
		creq.Header().Set("Authorization", "Bearer "+token)
	}
	res, err := client.CallUnary(ctx, creq)
	if err != nil {
		return nil, err
	}
	return ResPtr(res.Msg), nil
}

// MustCall is Call that fails the test on error.
func MustCall[Res any, ResPtr interface {
	*Res
	proto.Message
}](tb testing.TB, s *Server, tr Transport, procedure, token string, req proto.Message) ResPtr {
	tb.Helper()
	res, err := Call[Res, ResPtr](context.Background(), s, tr, procedure, token, req)
	if err != nil {
		tb.Fatalf("%s %s: %v", tr, procedure, err)
	}
	return res
}

// anyMessage lets one generic client send any request message: connect's
// codecs see the proto.Message inside.
type anyMessage struct{ proto.Message }

// callREST sends req to the REST path that the method's google.api.http
// annotation names: path variables from req's fields, the rest as the JSON
// body (body "*") or as query parameters (GET, DELETE).
func (s *Server) callREST(ctx context.Context, procedure, token string, req, res proto.Message) error {
	method, tmpl, hasBody, err := RESTMapping(procedure)
	if err != nil {
		return err
	}
	msg := req.ProtoReflect()
	fields := msg.Descriptor().Fields()
	inPath := map[string]bool{}
	path := tmpl
	for {
		i := strings.IndexByte(path, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(path[i:], '}') + i
		name := path[i+1 : j]
		inPath[name] = true
		fd := fields.ByName(protoreflect.Name(name))
		path = path[:i] + url.PathEscape(msg.Get(fd).String()) + path[j+1:]
	}
	// The contract's paths end in a slash; both forms must work.
	u := s.URL + path + "/"
	var body io.Reader
	if hasBody {
		b, err := protojson.Marshal(req)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	} else {
		q := url.Values{}
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if inPath[string(fd.Name())] {
				return true
			}
			if fd.IsList() {
				for i := range v.List().Len() {
					q.Add(fd.JSONName(), scalarString(fd, v.List().Get(i)))
				}
			} else {
				q.Set(fd.JSONName(), scalarString(fd, v))
			}
			return true
		})
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
	}
	hreq, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		hreq.Header.Set("Authorization", "Bearer "+token)
	}
	hres, err := s.HTTP.Do(hreq)
	if err != nil {
		return err
	}
	defer hres.Body.Close()
	data, err := io.ReadAll(hres.Body)
	if err != nil {
		return err
	}
	if hres.StatusCode != http.StatusOK {
		return restError(hres.StatusCode, data)
	}
	return protojson.Unmarshal(data, res)
}

// RESTMapping returns the HTTP method and path template (`/api/posts/{post_id}`)
// of procedure's google.api.http annotation, and whether the request
// message is the JSON body (`body: "*"`) rather than query parameters.
func RESTMapping(procedure string) (method, template string, body bool, err error) {
	md, err := methodByProcedure(procedure)
	if err != nil {
		return "", "", false, err
	}
	rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	switch p := rule.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		method, template = http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		method, template = http.MethodPost, p.Post
	case *annotations.HttpRule_Patch:
		method, template = http.MethodPatch, p.Patch
	case *annotations.HttpRule_Delete:
		method, template = http.MethodDelete, p.Delete
	default:
		return "", "", false, fmt.Errorf("%s has no REST mapping", procedure)
	}
	return method, template, rule.GetBody() == "*", nil
}

func scalarString(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	if fd.Kind() == protoreflect.EnumKind {
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
	}
	return v.String()
}

// restError turns a REST error answer back into the *connect.Error the
// other transports give, checking on the way that the body is the
// google.rpc.Status JSON with a numeric code that the contract promises and
// that the HTTP status matches that code.
func restError(status int, body []byte) error {
	var st struct {
		Code    *int            `json:"code"`
		Message string          `json:"message"`
		Details json.RawMessage `json:"details"`
	}
	if err := json.Unmarshal(body, &st); err != nil || st.Code == nil {
		return fmt.Errorf("REST error %d without a google.rpc.Status body: %q", status, body)
	}
	code := connect.Code(*st.Code)
	if want := httpStatus(code); want != status {
		return fmt.Errorf("REST error code %s came with HTTP %d, want %d", code, status, want)
	}
	if st.Message == "" {
		return fmt.Errorf("REST error %d has no message: %q", status, body)
	}
	return connect.NewError(code, errors.New(st.Message))
}

// httpStatus is the HTTP status vanguard gives each Connect code.
func httpStatus(c connect.Code) int {
	switch c {
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeOutOfRange:
		return http.StatusBadRequest
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeAlreadyExists, connect.CodeAborted:
		return http.StatusConflict
	case connect.CodeResourceExhausted:
		return http.StatusTooManyRequests
	case connect.CodeUnimplemented:
		return http.StatusNotImplemented
	case connect.CodeUnavailable:
		return http.StatusServiceUnavailable
	case connect.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	case connect.CodeCanceled:
		return 499
	default:
		return http.StatusInternalServerError
	}
}

func methodByProcedure(procedure string) (protoreflect.MethodDescriptor, error) {
	name := strings.Replace(strings.TrimPrefix(procedure, "/"), "/", ".", 1)
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, fmt.Errorf("procedure %s: %w", procedure, err)
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok {
		return nil, fmt.Errorf("procedure %s is not a method", procedure)
	}
	return md, nil
}
