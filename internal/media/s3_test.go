package media_test

import (
	"bytes"
	"io"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/gcerrors"

	"github.com/flock-social/flock/internal/media"
)

// The S3 backend against a real S3-protocol server (gofakes3, in process):
// write, read, ranged read (what playback needs), and delete.
func TestOpenBucket_S3CompatibleStorage(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("media"); err != nil {
		t.Fatal(err)
	}
	s3 := httptest.NewServer(gofakes3.New(backend).Server())
	defer s3.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_REGION", "us-east-1")

	q := url.Values{"region": {"us-east-1"}, "endpoint": {s3.URL}, "use_path_style": {"true"}, "disable_https": {"true"}}
	ctx := t.Context()
	b, err := media.OpenBucket(ctx, "s3://media?"+q.Encode())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer b.Close()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	if err := b.WriteAll(ctx, "avatars/u1/abc.jpg", data, nil); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := b.ReadAll(ctx, "avatars/u1/abc.jpg")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	r, err := b.NewRangeReader(ctx, "avatars/u1/abc.jpg", 5, 10, nil)
	if err != nil {
		t.Fatalf("range read: %v", err)
	}
	part, _ := io.ReadAll(r)
	r.Close()
	if string(part) != "5678901234" {
		t.Errorf("range = %q", part)
	}
	if err := b.Delete(ctx, "avatars/u1/abc.jpg"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := b.ReadAll(ctx, "avatars/u1/abc.jpg"); gcerrors.Code(err) != gcerrors.NotFound {
		t.Errorf("after delete: %v, want not found", err)
	}
}
