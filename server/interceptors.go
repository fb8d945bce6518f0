package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/server/fieldcheck"
)

// connectCodes maps flock error codes onto Connect codes, 1:1. Vanguard
// derives the REST status from the Connect code.
var connectCodes = map[string]connect.Code{
	flock.EINVALID:      connect.CodeInvalidArgument,
	flock.ENOTFOUND:     connect.CodeNotFound,
	flock.ECONFLICT:     connect.CodeAlreadyExists,
	flock.EFORBIDDEN:    connect.CodePermissionDenied,
	flock.EUNAUTHORIZED: connect.CodeUnauthenticated,
	flock.EPRECONDITION: connect.CodeFailedPrecondition,
	flock.ERATELIMIT:    connect.CodeResourceExhausted,
	flock.EUNAVAILABLE:  connect.CodeUnavailable,
	flock.EINTERNAL:     connect.CodeInternal,
}

// toConnectError turns a domain error into the error the client sees:
// flock errors keep their message (with a BadRequest detail naming the
// field, when there is one); anything else is logged with the request id
// and reaches the client only as "internal error" plus that id.
func toConnectError(ctx context.Context, log *slog.Logger, spec connect.Spec, err error) error {
	procedure := spec.Procedure
	var ce *connect.Error
	if errors.As(err, &ce) {
		var input protoreflect.MessageDescriptor
		if md, ok := spec.Schema.(protoreflect.MethodDescriptor); ok {
			input = md.Input()
		}
		return withBadRequest(ce, input)
	}
	var fe *flock.Error
	if errors.As(err, &fe) && fe.Code != flock.EINTERNAL {
		if fe.Code == flock.EUNAVAILABLE && err != error(fe) {
			// A dependency failed (the cause is wrapped); a bare flock error
			// is a deliberate answer, such as streams closing on shutdown.
			log.WarnContext(ctx, "unavailable", "procedure", procedure, "err", err)
		}
		out := challenge(connect.NewError(connectCodes[fe.Code], errors.New(fe.Message)))
		if fe.Field != "" {
			if d, derr := connect.NewErrorDetail(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
				Field: fe.Field, Description: fe.Message,
			}}}); derr == nil {
				out.AddDetail(d)
			}
		}
		return out
	}
	// A client that went away or ran out of time: whatever failed after
	// that (a transaction database/sql rolled back on cancel, say) is not
	// a server error to log.
	if errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled) {
		return connect.NewError(connect.CodeCanceled, errors.New("request canceled"))
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("request timed out"))
	}
	id := requestID(ctx)
	log.ErrorContext(ctx, "internal error", "procedure", procedure, "request_id", id, "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("internal error (request id "+id+")"))
}

// withBadRequest adds a google.rpc.BadRequest detail to a protovalidate
// error, so that every invalid_argument with field violations carries the
// same detail type whether the proto rules or the domain caught it; input
// is the request's message (nil when unknown), whose oneofs name the
// fields a client may send.
func withBadRequest(ce *connect.Error, input protoreflect.MessageDescriptor) error {
	if ce.Code() != connect.CodeInvalidArgument {
		return ce
	}
	var verr *protovalidate.ValidationError
	if !errors.As(ce, &verr) {
		return ce
	}
	br := &errdetails.BadRequest{}
	for _, v := range verr.Violations {
		if fd := v.FieldDescriptor; fd != nil && fd.Kind() == protoreflect.EnumKind && strings.HasPrefix(v.Proto.GetRuleId(), "enum.") {
			// "must not be in list [0]" says nothing to a JSON client.
			v.Proto.Message = proto.String("must be one of " + allowedEnumNames(fd))
		}
		if v.Proto.GetRuleId() == "string.min_len" && v.FieldValue.IsValid() && v.FieldValue.String() == "" {
			// "must be at least 3 characters" for a field that was not
			// sent at all reads as if something had been.
			msg := "is missing or empty"
			switch {
			case v.FieldDescriptor != nil && strings.HasSuffix(string(v.FieldDescriptor.Name()), "email"):
				msg += ": send an email address"
			case v.RuleValue.IsValid() && v.RuleValue.Uint() > 1:
				msg += fmt.Sprintf(": send at least %d characters", v.RuleValue.Uint())
			}
			v.Proto.Message = proto.String(msg)
		}
		if v.FieldDescriptor == nil && v.Proto.GetRuleId() == "required" && input != nil {
			// "exactly one field is required in oneof" names the oneof,
			// which no JSON client sends: name its fields instead.
			if od := input.Oneofs().ByName(protoreflect.Name(protovalidate.FieldPathString(v.Proto.GetField()))); od != nil {
				v.Proto.Message = proto.String("send one of " + fieldcheck.OneofFields(od))
			}
		}
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       protovalidate.FieldPathString(v.Proto.GetField()),
			Description: v.Proto.GetMessage(),
		})
	}
	// A new error, so that its buf.validate.Violations detail carries the
	// messages as reworded here: the detail the validator attached was
	// encoded with its own words, and REST clients read it as it was.
	out := connect.NewError(ce.Code(), verr)
	for k, v := range ce.Meta() {
		out.Meta()[k] = v
	}
	if d, err := connect.NewErrorDetail(verr.ToProto()); err == nil {
		out.AddDetail(d)
	}
	if d, err := connect.NewErrorDetail(br); err == nil {
		out.AddDetail(d)
	}
	return out
}

// allowedEnumNames lists the names an enum field takes: its enum's values
// but the zero one, narrowed by the field's own rules (in, not_in), so that
// a role field that refuses GROUP_ROLE_OWNER does not offer it.
func allowedEnumNames(fd protoreflect.FieldDescriptor) string {
	rules, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
	in, notIn := rules.GetEnum().GetIn(), rules.GetEnum().GetNotIn()
	var names []string
	vals := fd.Enum().Values()
	for i := range vals.Len() {
		n := int32(vals.Get(i).Number())
		if n == 0 || slices.Contains(notIn, n) || (len(in) > 0 && !slices.Contains(in, n)) {
			continue
		}
		names = append(names, string(vals.Get(i).Name()))
	}
	if len(names) == 0 {
		return fieldcheck.Allowed(fd.Enum())
	}
	return strings.Join(names, ", ")
}

// errorInterceptor is the outermost interceptor: every error leaving a
// handler passes through toConnectError.
type errorInterceptor struct{ log *slog.Logger }

func (i errorInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		if err != nil {
			return nil, toConnectError(ctx, i.log, req.Spec(), err)
		}
		return res, nil
	}
}

func (errorInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i errorInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := next(ctx, conn); err != nil {
			return toConnectError(ctx, i.log, conn.Spec(), err)
		}
		return nil
	}
}

// publicProcedures need no access token.
var publicProcedures = map[string]bool{
	flockv1connect.UserServiceRegisterProcedure:             true,
	flockv1connect.UserServiceVerifyEmailProcedure:          true,
	flockv1connect.UserServiceResendVerificationProcedure:   true,
	flockv1connect.UserServiceLoginProcedure:                true,
	flockv1connect.UserServiceRefreshTokenProcedure:         true,
	flockv1connect.UserServiceLogoutProcedure:               true,
	flockv1connect.UserServiceRequestPasswordResetProcedure: true,
	flockv1connect.UserServiceResetPasswordProcedure:        true,
}

type principalKey struct{}

// principal returns the authenticated caller; the auth interceptor
// guarantees one for every procedure that is not public.
func principal(ctx context.Context) *account.Principal {
	p, _ := ctx.Value(principalKey{}).(*account.Principal)
	return p
}

// authInterceptor authenticates the bearer token of every non-public
// procedure (and of public ones, when a token is sent) and puts the
// principal in the context.
type authInterceptor struct{ accounts *account.Service }

var errNotStaff = connect.NewError(connect.CodePermissionDenied, errors.New("only staff may moderate; an admin makes an account staff with `flock user promote <username>`"))

var errNoToken = challenge(connect.NewError(connect.CodeUnauthenticated, errors.New("missing access token: send the header 'Authorization: Bearer <accessToken>' (get one from Login)")))

// bearerChallenge is the WWW-Authenticate header of every unauthenticated
// answer: RFC 6750 asks it of a 401, and HTTP clients and proxies read the
// scheme to expect from it.
const bearerChallenge = `Bearer realm="flock"`

// challenge sets bearerChallenge on an unauthenticated error; connect
// writes an error's metadata as response headers, and vanguard passes them
// on to REST clients.
func challenge(ce *connect.Error) *connect.Error {
	if ce.Code() == connect.CodeUnauthenticated {
		ce.Meta().Set("WWW-Authenticate", bearerChallenge)
	}
	return ce
}

func (i authInterceptor) authenticate(ctx context.Context, procedure, header string) (context.Context, error) {
	token, ok := bearerToken(header)
	if !ok {
		if publicProcedures[procedure] {
			return ctx, nil
		}
		return ctx, errNoToken
	}
	p, err := i.accounts.Authenticate(ctx, token)
	if err != nil {
		if publicProcedures[procedure] {
			return ctx, nil
		}
		return ctx, err
	}
	// Function-level authorization (security.md property 3), before the
	// request is even validated: the moderation service is staff only. The
	// domain checks again.
	if strings.HasPrefix(procedure, "/"+flockv1connect.ModerationServiceName+"/") && !p.IsStaff() {
		return ctx, errNotStaff
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

func (i authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, err := i.authenticate(ctx, req.Spec().Procedure, req.Header().Get("Authorization"))
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := i.authenticate(ctx, conn.Spec().Procedure, conn.RequestHeader().Get("Authorization"))
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// bearerToken extracts the token of an "Authorization: Bearer <token>" header.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// metricsInterceptor counts RPCs by procedure and code and times them.
type metricsInterceptor struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetricsInterceptor(reg prometheus.Registerer) *metricsInterceptor {
	m := &metricsInterceptor{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flock_rpc_requests_total", Help: "RPCs handled, by procedure and Connect code.",
		}, []string{"procedure", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flock_rpc_duration_seconds", Help: "Time to handle an RPC.", Buckets: prometheus.DefBuckets,
		}, []string{"procedure"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *metricsInterceptor) observe(procedure string, start time.Time, err error) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	m.requests.WithLabelValues(procedure, code).Inc()
	m.duration.WithLabelValues(procedure).Observe(time.Since(start).Seconds())
}

func (m *metricsInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		res, err := next(ctx, req)
		m.observe(req.Spec().Procedure, start, err)
		return res, err
	}
}

func (*metricsInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (m *metricsInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		m.observe(conn.Spec().Procedure, start, err)
		return err
	}
}
