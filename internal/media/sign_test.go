package media

import (
	"net/url"
	"testing"
	"time"
)

func TestSigner_GrantsOnePathUntilExpiry(t *testing.T) {
	s := NewSigner([]byte("secret"))
	now := time.Unix(1_800_000_000, 0)
	q, err := url.ParseQuery(s.Sign("/media/videos/a/video.mp4", now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Verify("/media/videos/a/video.mp4", q, now) {
		t.Fatal("a fresh signature is refused")
	}
	if s.Verify("/media/videos/b/video.mp4", q, now) {
		t.Error("the signature of one path opens another")
	}
	if s.Verify("/media/videos/a/video.mp4", q, now.Add(time.Hour+time.Second)) {
		t.Error("an expired signature is accepted")
	}
	if NewSigner([]byte("other")).Verify("/media/videos/a/video.mp4", q, now) {
		t.Error("a signature from another secret is accepted")
	}
	later := url.Values{"exp": {"9999999999"}, "sig": q["sig"]}
	if s.Verify("/media/videos/a/video.mp4", later, now) {
		t.Error("a signature with its expiry pushed out is accepted")
	}
	for _, bad := range []url.Values{{}, {"exp": {"x"}, "sig": q["sig"]}, {"exp": q["exp"], "sig": {"!!"}}} {
		if s.Verify("/media/videos/a/video.mp4", bad, now) {
			t.Errorf("malformed query %v accepted", bad)
		}
	}
}
