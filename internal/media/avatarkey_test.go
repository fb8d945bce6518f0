package media_test

import (
	"regexp"
	"testing"

	"github.com/flock-social/flock/internal/media"
)

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
