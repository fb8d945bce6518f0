package page_test

import (
	"testing"
	"time"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/page"
)

func TestSize_DefaultsAndClamps_P13(t *testing.T) {
	for req, want := range map[int32]int{0: 20, -5: 20, 1: 1, 100: 100, 101: 100, 1 << 30: 100} {
		if got := page.Size(req); got != want {
			t.Errorf("Size(%d) = %d, want %d", req, got, want)
		}
	}
}

func TestCursor_RoundTripAndKindChecked(t *testing.T) {
	c := page.Cursor{Kind: "feed", ID: "01ABC", Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Score: 1.5}
	tok := page.Encode(c)
	got, ok, err := page.Decode("feed", tok)
	if err != nil || !ok || got != c {
		t.Fatalf("Decode = %+v %v %v, want %+v", got, ok, err, c)
	}
	if _, _, err := page.Decode("comments", tok); flock.ErrorCode(err) != flock.EINVALID {
		t.Errorf("a feed token for comments: %v, want invalid_argument", err)
	}
	for _, bad := range []string{"!!!", "e30", "bm90IGpzb24", string(make([]byte, 600))} {
		if _, _, err := page.Decode("feed", bad); flock.ErrorCode(err) != flock.EINVALID {
			t.Errorf("Decode(%q) = %v, want invalid_argument", bad, err)
		}
	}
	if _, ok, err := page.Decode("feed", ""); ok || err != nil {
		t.Errorf("empty token = %v %v, want the first page", ok, err)
	}
}

func TestNext_TrimsTheProbeRow(t *testing.T) {
	rows := []string{"a", "b", "c"}
	got, tok := page.Next(rows, 2, func(s string) page.Cursor { return page.Cursor{Kind: "x", ID: s} })
	if len(got) != 2 || tok == "" {
		t.Fatalf("Next = %v %q", got, tok)
	}
	if c, _, _ := page.Decode("x", tok); c.ID != "b" {
		t.Errorf("cursor at %q, want the last row kept (b)", c.ID)
	}
	if got, tok := page.Next(rows, 3, func(s string) page.Cursor { return page.Cursor{Kind: "x", ID: s} }); len(got) != 3 || tok != "" {
		t.Errorf("last page = %v %q, want no token", got, tok)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("feed", page.Encode(page.Cursor{Kind: "feed", ID: "01X"}))
	f.Add("feed", "")
	f.Add("x", "e30")
	f.Fuzz(func(t *testing.T, kind, token string) {
		c, ok, err := page.Decode(kind, token)
		if err != nil {
			if flock.ErrorCode(err) != flock.EINVALID {
				t.Fatalf("error code %q", flock.ErrorCode(err))
			}
			return
		}
		if ok && c.Kind != kind {
			t.Fatalf("accepted a %q token as %q", c.Kind, kind)
		}
		if ok {
			again, _, err := page.Decode(kind, page.Encode(c))
			if err != nil || again.ID != c.ID || !again.Time.Equal(c.Time) || (again.Score != c.Score && c.Score == c.Score) {
				t.Fatalf("re-encoding changed the cursor: %+v -> %+v (%v)", c, again, err)
			}
		}
	})
}
