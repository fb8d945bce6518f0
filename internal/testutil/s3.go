package testutil

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 starts an S3-protocol server in process (gofakes3, speaking the real
// protocol to gocloud.dev's s3blob) with an empty bucket "media", sets the
// AWS credentials and region the s3:// URL needs, and returns the media URL
// that opens it and a function listing the bucket's keys. The server stops
// when the test ends. It calls t.Setenv, so the test cannot be parallel.
func S3(t *testing.T) (mediaURL string, keys func() []string) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("media"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_REGION", "us-east-1")
	q := url.Values{"region": {"us-east-1"}, "endpoint": {srv.URL}, "use_path_style": {"true"}, "disable_https": {"true"}}
	keys = func() []string {
		t.Helper()
		list, err := backend.ListBucket("media", &gofakes3.Prefix{}, gofakes3.ListBucketPage{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, o := range list.Contents {
			out = append(out, o.Key)
		}
		return out
	}
	return "s3://media?" + q.Encode(), keys
}
