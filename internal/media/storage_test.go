package media_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/flock-social/flock/internal/media"
)

func TestOpenBucket(t *testing.T) {
	t.Parallel()
	t.Run("file URL creates the directory and stores avatars", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		dir := filepath.Join(t.TempDir(), "media", "nested")
		bucket, err := media.OpenBucket(ctx, "file://"+filepath.ToSlash(dir))
		if err != nil {
			t.Fatalf("OpenBucket() error = %v", err)
		}
		t.Cleanup(func() { bucket.Close() })

		img := MustProcess(t, MustPNG(t, solid(10, 10, red)))
		key := media.AvatarKey("01J9ZQ3V7Y8K2M4N6P8R0T2V4X", img)
		if err := bucket.WriteAll(ctx, key, img.Data, nil); err != nil {
			t.Fatalf("WriteAll() error = %v", err)
		}
		got, err := bucket.ReadAll(ctx, key)
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
		if _, err := media.OpenBucket(context.Background(), "gs://flock-media"); err == nil {
			t.Error("OpenBucket(gs://) succeeded without a gcs driver linked in")
		}
	})
}

func TestAvatarKey(t *testing.T) {
	t.Parallel()
	a := MustProcess(t, MustPNG(t, solid(10, 10, red)))
	b := MustProcess(t, MustPNG(t, solid(10, 10, blue)))

	key := media.AvatarKey("user1", a)
	if !regexp.MustCompile(`^avatars/user1/[0-9a-f]{16}\.jpg$`).MatchString(key) {
		t.Errorf("AvatarKey() = %q, want avatars/user1/<16 hex>.jpg", key)
	}
	if again := media.AvatarKey("user1", a); again != key {
		t.Errorf("same picture gave keys %q and %q", key, again)
	}
	if other := media.AvatarKey("user1", b); other == key {
		t.Errorf("different pictures share key %q", key)
	}
}
