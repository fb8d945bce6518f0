package bucket_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"gocloud.dev/gcerrors"

	"github.com/flock-social/flock/internal/media"
	"github.com/flock-social/flock/internal/media/bucket"
	tu "github.com/flock-social/flock/internal/testutil"
)

// The S3 backend against a real S3-protocol server (gofakes3, in process; tu.S3):
// write, read, ranged read (what playback needs), and delete.
func TestOpen_S3CompatibleStorage(t *testing.T) {
	ctx := t.Context()
	mediaURL, _ := tu.S3(t)
	b, err := bucket.Open(ctx, mediaURL)
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

func TestOpen(t *testing.T) {
	t.Parallel()
	t.Run("file URL creates the directory and stores avatars", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		dir := filepath.Join(t.TempDir(), "media", "nested")
		b, err := bucket.Open(ctx, "file://"+filepath.ToSlash(dir))
		if err != nil {
			t.Fatalf("Open() error = %v", err)
		}
		t.Cleanup(func() { b.Close() })

		img := media.Image{Data: []byte("\x89PNG not really"), Ext: "png"}
		key := media.AvatarKey("01J9ZQ3V7Y8K2M4N6P8R0T2V4X", img)
		if err := b.WriteAll(ctx, key, img.Data, nil); err != nil {
			t.Fatalf("WriteAll() error = %v", err)
		}
		got, err := b.ReadAll(ctx, key)
		if err != nil {
			t.Fatalf("ReadAll() error = %v", err)
		}
		if !bytes.Equal(got, img.Data) {
			t.Error("read back different bytes")
		}
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(key))); err != nil {
			t.Errorf("avatar is not on disk under its key: %v", err)
		}
	})
	t.Run("unknown scheme is an error", func(t *testing.T) {
		t.Parallel()
		if _, err := bucket.Open(context.Background(), "gs://flock-media"); err == nil {
			t.Error("Open(gs://) succeeded without a gcs driver linked in")
		}
	})
}
