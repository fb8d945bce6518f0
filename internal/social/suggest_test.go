package social_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/pubsub"
	"github.com/flock-social/flock/internal/social"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
)

// world seeds a store directly, for the rules the API tests cannot reach
// (post ages, group posts, suspended followees).
type world struct {
	t   *testing.T
	db  *store.DB
	svc *social.Service
}

func newWorld(t *testing.T, db *store.DB) *world {
	broker, err := pubsub.Open("")
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, db: db, svc: social.NewService(db, notify.NewService(db, broker, slog.New(slog.DiscardHandler)))}
}

func (w *world) exec(q string, args ...any) {
	w.t.Helper()
	if _, err := w.db.ExecContext(context.Background(), q, args...); err != nil {
		w.t.Fatalf("%s: %v", q, err)
	}
}

// user makes a verified account with interests.
func (w *world) user(name string, interests ...string) string {
	w.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	u := &store.User{Username: name, Email: name + "@example.com", PasswordHash: "x", EmailVerifiedAt: &now}
	if err := w.db.CreateUser(ctx, w.db, u); err != nil {
		w.t.Fatal(err)
	}
	if len(interests) > 0 {
		if _, err := w.db.UpdateUser(ctx, w.db, u.ID, store.UserUpdate{Interests: &interests}); err != nil {
			w.t.Fatal(err)
		}
	}
	return u.ID
}

func (w *world) follow(follower string, followees ...string) {
	w.t.Helper()
	for _, f := range followees {
		if _, err := w.db.CreateFollow(context.Background(), w.db, follower, f); err != nil {
			w.t.Fatal(err)
		}
	}
}

// post writes a post with one hashtag, made age ago.
func (w *world) post(author, tag string, age time.Duration, vis string) {
	w.t.Helper()
	at := time.Now().UTC().Add(-age)
	p := &store.Post{ID: ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String(), AuthorID: author,
		Content: "#" + tag, Visibility: vis, Hashtags: []string{tag}, CreatedAt: at}
	if err := w.db.CreatePost(context.Background(), w.db, p); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) suggest(userID string, size int32) map[string]social.Suggestion {
	w.t.Helper()
	got, err := w.svc.SuggestUsers(context.Background(), principal(userID), size)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]social.Suggestion{}
	for _, s := range got {
		out[s.User.ID] = s
	}
	return out
}

// Only recent public posts make their authors topical.
func TestSuggestUsers_OnlyRecentPublicPostsCount(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		w := newWorld(t, db)
		me := w.user("me")
		w.post(me, "knitting", time.Hour, store.VisibilityPublic)
		recent, old, private := w.user("recent"), w.user("old"), w.user("private")
		w.post(recent, "knitting", 2*24*time.Hour, store.VisibilityPublic)
		w.post(old, "knitting", 45*24*time.Hour, store.VisibilityPublic)
		w.post(private, "knitting", time.Hour, store.VisibilityFollowers)

		got := w.suggest(me, 0)
		if s, ok := got[recent]; !ok || s.Reason != "Also into #knitting" {
			t.Errorf("recent author: %+v, want Also into #knitting", s)
		}
		for id, why := range map[string]string{old: "a post older than 30 days", private: "a followers-only post", me: "the caller"} {
			if s, ok := got[id]; ok {
				t.Errorf("suggested %s for %s: %q", s.User.Username, why, s.Reason)
			}
		}
	})
}

// Reasons name at most two topics and count the rest; a followee who is
// suspended neither names nor counts toward graph suggestions.
func TestSuggestUsers_ReasonsAndSuspendedFollowees(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		w := newWorld(t, db)
		me := w.user("me", "alpha", "beta", "gamma", "delta", "bird watching")
		many := w.user("many", "alpha", "beta", "gamma", "delta")
		phrase := w.user("phrase", "bird watching")
		amy, bob, zed := w.user("amy"), w.user("bob"), w.user("zed")
		target, viaSuspended := w.user("target"), w.user("viasuspended")
		w.follow(me, amy, bob, zed)
		w.follow(amy, target)
		w.follow(zed, target, viaSuspended)
		w.exec("UPDATE users SET suspended_at = ? WHERE id = ?", time.Now().UTC(), zed)

		got := w.suggest(me, 0)
		for id, want := range map[string]struct {
			reason string
			score  float64
		}{
			many:   {"Also into #alpha, #gamma and 2 more", 4 * social.TopicWeight},
			phrase: {"Also into bird watching", social.TopicWeight},
			target: {"Followed by amy, whom you follow", social.GraphWeight},
		} {
			if s := got[id]; s.Reason != want.reason || s.Score != want.score {
				t.Errorf("%s: %q %v, want %q %v", id, s.Reason, s.Score, want.reason, want.score)
			}
		}
		if s, ok := got[viaSuspended]; ok && s.Reason != social.ReasonPopular {
			t.Errorf("suggested through a suspended followee: %q", s.Reason)
		}
	})
}

// Candidates from both sources add up and are ordered by score, then by
// newest account; a page never holds more than asked.
func TestSuggestUsers_MergedScoresOrdered(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		w := newWorld(t, db)
		me := w.user("me", "chess")
		var friends []string
		for i := range 3 {
			friends = append(friends, w.user(fmt.Sprintf("friend%d", i)))
		}
		w.follow(me, friends...)
		both := w.user("both", "chess") // 1 mutual + 1 topic
		twice := w.user("twice")        // 2 mutuals
		w.user("chessa", "chess")
		w.user("chessb", "chess")
		w.follow(friends[0], both, twice)
		w.follow(friends[1], twice)

		res, err := w.svc.SuggestUsers(context.Background(), principal(me), 0)
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, s := range res {
			order = append(order, s.User.Username)
		}
		want := []string{"twice", "both", "chessb", "chessa"}
		if len(order) < len(want) || fmt.Sprint(order[:len(want)]) != fmt.Sprint(want) {
			t.Fatalf("order = %v, want %v first", order, want)
		}
		if res[1].Score != social.GraphWeight+social.TopicWeight || res[1].Reason != "Followed by friend0, whom you follow; also into #chess" {
			t.Errorf("both = %v %q", res[1].Score, res[1].Reason)
		}
		if res, _ := w.svc.SuggestUsers(context.Background(), principal(me), 2); len(res) != 2 || res[0].User.ID != twice {
			t.Errorf("page of 2 = %d suggestions", len(res))
		}
	})
}
