package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// `grpcurl -plaintext host:port list` works: reflection lists every service.
func TestReflection_ListsEveryService(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	// Reflection is a bidirectional stream: gRPC only (gRPC-Web has no bidi).
	for _, opt := range []connect.ClientOption{connect.WithGRPC()} {
		stream := grpcreflect.NewClient(s.H2C, s.URL, opt).NewStream(t.Context())
		names, err := stream.ListServices()
		if err != nil {
			t.Fatalf("list services: %v", err)
		}
		stream.Close()
		for _, want := range []protoreflect.FullName{
			flockv1connect.UserServiceName, flockv1connect.PostServiceName, flockv1connect.GroupServiceName,
			flockv1connect.NotificationServiceName, flockv1connect.ActivityServiceName, flockv1connect.ModerationServiceName,
		} {
			if !slices.Contains(names, want) {
				t.Errorf("reflection lists %v, missing %s", names, want)
			}
		}
	}
}

func TestHealth_GRPCAndHTTP(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	client := connect.NewClient[healthv1.HealthCheckRequest, healthv1.HealthCheckResponse](
		s.H2C, s.URL+"/grpc.health.v1.Health/Check", connect.WithGRPC())
	res, err := client.CallUnary(t.Context(), connect.NewRequest(&healthv1.HealthCheckRequest{}))
	if err != nil || res.Msg.GetStatus() != healthv1.HealthCheckResponse_SERVING {
		t.Fatalf("health check = %v, %v", res, err)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if res, body := rawBody(t, s, http.MethodGet, path, "", ""); res.StatusCode != http.StatusOK || body != "ok\n" {
			t.Errorf("GET %s = %d %q", path, res.StatusCode, body)
		}
	}
	s.MustAccount(t, "counted")
	if res, body := rawBody(t, s, http.MethodGet, "/metrics", "", ""); res.StatusCode != http.StatusOK ||
		!strings.Contains(body, `flock_rpc_requests_total{code="ok",procedure="/flock.v1.UserService/Login"} 1`) {
		t.Errorf("GET /metrics = %d, no count of the login in:\n%.2000s", res.StatusCode, body)
	} else if !strings.Contains(body, `flock_db_tx_conflicts_total{reason="deadlock"} 0`) {
		t.Errorf("GET /metrics: no count of deadlocks in:\n%.2000s", body)
	} else if !strings.Contains(body, `flock_row_cache_lookups_total{cache="posts",result="hit"} 0`) {
		t.Errorf("GET /metrics: no count of the row caches' lookups in:\n%.2000s", body)
	}
	if res, body := rawBody(t, s, http.MethodGet, "/openapi.yaml", "", ""); res.StatusCode != http.StatusOK || !strings.Contains(body, "/api/users/login") {
		t.Errorf("GET /openapi.yaml = %d", res.StatusCode)
	}
}

// Browsers in the allowed origins may call with an Authorization header
// (browsers send the requested headers lower-case and sorted);
// others get no CORS grant.
func TestCORS_AllowListAndPreflight_P15(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite", func(c *server.Config) { c.CORSOrigins = []string{"https://app.example"} })
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, s.URL+"/flock.v1.UserService/GetMe", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,connect-protocol-version,content-type")
		res, err := s.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	ok := preflight("https://app.example")
	if ok.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(strings.ToLower(ok.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("allowed origin preflight headers = %v", ok.Header)
	}
	if ok.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("credentials must stay off: tokens travel in headers")
	}
	if got := preflight("https://evil.example").Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("other origin granted %q", got)
	}
}

// Every response carries a request id; an internal error would show only it.
func TestRequestID_EchoedOrMade(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/healthz", nil)
	req.Header.Set("X-Request-Id", "trace-123")
	res, err := s.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("X-Request-Id") != "trace-123" {
		t.Errorf("X-Request-Id = %q, want the caller's", res.Header.Get("X-Request-Id"))
	}
	res2, _ := rawBody(t, s, http.MethodGet, "/healthz", "", "")
	if len(res2.Header.Get("X-Request-Id")) < 8 {
		t.Errorf("no request id made: %v", res2.Header)
	}
}
