package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
)

func (a api) suggestions(tok string, size int32) []*flockv1.Suggestion {
	a.t.Helper()
	return must[flockv1.SuggestUsersResponse](a, flockv1connect.UserServiceSuggestUsersProcedure, tok,
		&flockv1.SuggestUsersRequest{PageSize: size}).GetSuggestions()
}

func (a api) block(tok, id string) {
	a.t.Helper()
	must[flockv1.BlockResponse](a, flockv1connect.UserServiceBlockProcedure, tok, &flockv1.BlockRequest{UserId: id})
}

func (a api) mustFollow(tok string, ids ...string) {
	a.t.Helper()
	for _, id := range ids {
		if err := a.follow(tok, id); err != nil {
			a.t.Fatalf("follow %s: %v", id, err)
		}
	}
}

func (a api) interests(tok string, interests ...string) {
	a.t.Helper()
	must[flockv1.UpdateMeResponse](a, flockv1connect.UserServiceUpdateMeProcedure, tok, &flockv1.UpdateMeRequest{Interests: interests})
}

// suspend suspends an account directly in the store, as moderation would.
func suspend(t *testing.T, s *tu.Server, id string) {
	t.Helper()
	if _, err := s.App.DB().NewUpdate().Model((*store.User)(nil)).Set("suspended_at = ?", time.Now().UTC()).
		Where("id = ?", id).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// unverified registers an account without verifying its email.
func unverified(a api, username string) string {
	a.t.Helper()
	return must[flockv1.RegisterResponse](a, flockv1connect.UserServiceRegisterProcedure, "", &flockv1.RegisterRequest{
		Username: username, Email: strings.ToLower(username) + "@example.com", Password: "password-of-" + username,
	}).GetUser().GetId()
}

// suggestionIDs returns the suggested user IDs in order.
func suggestionIDs(ss []*flockv1.Suggestion) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.GetUser().GetId()
	}
	return out
}

// checkOrdered fails unless suggestions come by score, then by ID
// (newest account first), and carry a reason and a user.
func checkOrdered(t *testing.T, ss []*flockv1.Suggestion) {
	t.Helper()
	for i, s := range ss {
		if s.GetUser().GetId() == "" || s.GetReason() == "" || s.GetScore() <= 0 {
			t.Errorf("suggestion %d is incomplete: %v", i, s)
		}
		if i == 0 {
			continue
		}
		prev := ss[i-1]
		if s.GetScore() > prev.GetScore() || (s.GetScore() == prev.GetScore() && s.GetUser().GetId() > prev.GetUser().GetId()) {
			t.Errorf("suggestion %d (%v %s) comes after %d (%v %s): not by score, then id", i, s.GetScore(), s.GetUser().GetId(), i-1, prev.GetScore(), prev.GetUser().GetId())
		}
	}
}

// checkNever fails when any of ids is suggested.
func checkNever(t *testing.T, ss []*flockv1.Suggestion, why map[string]string) {
	t.Helper()
	for _, s := range ss {
		if w, bad := why[s.GetUser().GetId()]; bad {
			t.Errorf("suggested %s (%s) with reason %q", s.GetUser().GetUsername(), w, s.GetReason())
		}
	}
}

// Friends of friends: counted by how many of the caller's followees
// follow them, named by one of those followees; never the caller, an
// account they follow, anyone across a block either way, suspended or
// unverified accounts, whichever source (graph or popular) finds them.
func TestSuggestUsers_Graph(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		acc := func(base string) *tu.Account { return a.s.MustAccount(t, name(a, base)) }
		me := acc("sg_me")
		f1, f2, f3 := acc("sg_f1"), acc("sg_f2"), acc("sg_f3")
		star, duo, solo := acc("sg_star"), acc("sg_duo"), acc("sg_solo")
		iBlock, blocksMe, suspended := acc("sg_iblock"), acc("sg_blocksme"), acc("sg_suspended")
		ghost := unverified(a, name(a, "sg_unverified"))

		a.mustFollow(me.AccessToken, f1.ID, f2.ID, f3.ID)
		for _, f := range []*tu.Account{f1, f2, f3} {
			a.mustFollow(f.AccessToken, star.ID, iBlock.ID, blocksMe.ID, suspended.ID, ghost, me.ID)
		}
		a.mustFollow(f1.AccessToken, duo.ID, solo.ID, f2.ID)
		a.mustFollow(f2.AccessToken, duo.ID, f3.ID)
		a.mustFollow(solo.AccessToken, me.ID) // solo follows the caller back
		a.block(me.AccessToken, iBlock.ID)
		a.block(blocksMe.AccessToken, me.ID)
		suspend(t, a.s, suspended.ID)

		got := a.suggestions(me.AccessToken, 0)
		checkOrdered(t, got)
		if len(got) < 3 || !slices.Equal(suggestionIDs(got)[:3], []string{star.ID, duo.ID, solo.ID}) {
			t.Fatalf("suggestions = %v, want star, duo, solo first", got)
		}
		f1Name := f1.Username // the first followee in alphabetical order
		for i, want := range []struct {
			reason string
			score  float64
		}{
			{"Followed by " + f1Name + " and 2 others you follow", 3},
			{"Followed by " + f1Name + " and 1 other you follow", 2},
			{"Followed by " + f1Name + ", whom you follow", 1},
		} {
			if got[i].GetReason() != want.reason || got[i].GetScore() != want.score {
				t.Errorf("suggestion %d (%s): %q score %v, want %q score %v", i, got[i].GetUser().GetUsername(), got[i].GetReason(), got[i].GetScore(), want.reason, want.score)
			}
		}
		// Hydrated through the caller's relationships, without private fields.
		if u := got[2].GetUser(); !u.GetFollowsMe() || u.GetFollowedByMe() || u.GetEmail() != "" || u.GetUsername() != solo.Username {
			t.Errorf("solo as suggested = %v, want followsMe and no email", u)
		}
		if u := got[0].GetUser(); u.GetFollowersCount() != 3 || u.GetFollowsMe() {
			t.Errorf("star as suggested = %v", u)
		}
		checkNever(t, got, map[string]string{
			me.ID: "the caller", f1.ID: "followed", f2.ID: "followed", f3.ID: "followed",
			iBlock.ID: "blocked by the caller", blocksMe.ID: "blocks the caller",
			suspended.ID: "suspended", ghost: "unverified",
		})

		// Following a suggestion removes it; the others stay.
		a.mustFollow(me.AccessToken, star.ID)
		got = a.suggestions(me.AccessToken, 2)
		if !slices.Equal(suggestionIDs(got), []string{duo.ID, solo.ID}) {
			t.Errorf("after following star: %v, want duo, solo", got)
		}
	})
}

// Topics: the caller's profile interests and the hashtags of the posts
// they write and like find accounts with those interests and authors of
// recent public posts with those hashtags, scored per shared topic; an
// account found by the graph too adds both, and says both.
func TestSuggestUsers_Interests(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		tr := string(a.tr)
		golang, rust, zig, elm := "golang_"+tr, "rust_"+tr, "zig_"+tr, "elm_"+tr
		acc := func(base string) *tu.Account { return a.s.MustAccount(t, name(a, base)) }
		me := acc("si_me")
		both, mixed, writer := acc("si_both"), acc("si_mixed"), acc("si_writer")
		liked, alsoLiked, private := acc("si_liked"), acc("si_alsoliked"), acc("si_private")
		friend, followed, iBlock, blocksMe, suspended := acc("si_friend"), acc("si_followed"), acc("si_iblock"), acc("si_blocksme"), acc("si_suspended")

		a.interests(me.AccessToken, strings.ToUpper(golang), "#"+rust) // stored normalised
		a.post(me.AccessToken, "learning #"+zig)
		likedPost := a.post(liked.AccessToken, "functional #"+elm)
		must[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, me.AccessToken, &flockv1.LikePostRequest{PostId: likedPost.GetId()})

		a.interests(both.AccessToken, golang, rust, "cooking")
		a.interests(mixed.AccessToken, golang)
		a.post(mixed.AccessToken, "fast builds #"+zig)
		a.post(writer.AccessToken, "comptime is neat #"+zig)
		a.post(alsoLiked.AccessToken, "more #"+elm)
		a.post(private.AccessToken, "for my followers only #"+zig, flockv1.Visibility_VISIBILITY_FOLLOWERS)
		for _, u := range []*tu.Account{followed, iBlock, blocksMe, suspended} {
			a.interests(u.AccessToken, golang)
			a.post(u.AccessToken, "#"+zig)
		}
		a.mustFollow(me.AccessToken, followed.ID, friend.ID)
		a.mustFollow(friend.AccessToken, both.ID)
		a.block(me.AccessToken, iBlock.ID)
		a.block(blocksMe.AccessToken, me.ID)
		suspend(t, a.s, suspended.ID)

		got := a.suggestions(me.AccessToken, 0)
		checkOrdered(t, got)
		checkNever(t, got, map[string]string{
			me.ID: "the caller", followed.ID: "followed", friend.ID: "followed",
			iBlock.ID: "blocked by the caller", blocksMe.ID: "blocks the caller", suspended.ID: "suspended",
			private.ID: "only a followers-only post",
		})
		type want struct {
			id, reason string
			score      float64
		}
		// both: 1 mutual + 2 topics; mixed: interest golang and a #zig post;
		// then one topic each, newest account first.
		wants := []want{
			{both.ID, fmt.Sprintf("Followed by %s, whom you follow; also into #%s and #%s", friend.Username, golang, rust), 1 + 2*0.75},
			{mixed.ID, fmt.Sprintf("Also into #%s and #%s", golang, zig), 2 * 0.75},
			{alsoLiked.ID, "Also into #" + elm, 0.75},
			{liked.ID, "Also into #" + elm, 0.75},
			{writer.ID, "Also into #" + zig, 0.75},
		}
		if len(got) < len(wants) {
			t.Fatalf("got %d suggestions, want at least %d: %v", len(got), len(wants), got)
		}
		for i, w := range wants {
			if g := got[i]; g.GetUser().GetId() != w.id || g.GetReason() != w.reason || g.GetScore() != w.score {
				t.Errorf("suggestion %d = %s %q %v, want %s %q %v", i, g.GetUser().GetUsername(), g.GetReason(), g.GetScore(), w.id, w.reason, w.score)
			}
		}
		// The rest, if any, are popular accounts from elsewhere on the server.
		for _, g := range got[len(wants):] {
			if g.GetReason() != "Popular on Flock" {
				t.Errorf("unexpected suggestion %s: %q", g.GetUser().GetUsername(), g.GetReason())
			}
		}
	})
}

// One server per engine for the two scenarios that need a server of
// their own (exact popular accounts; counted queries), one after the other.
func TestSuggestUsers_PopularFallbackAndPageSizes_P13(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		// A new account, with neither graph nor topics, gets the most
		// followed accounts (that have followers), then loses each it follows.
		t.Run("popular fallback", func(t *testing.T) {
			a := api{t: t, s: s, tr: tu.Connect}
			celeb, known := s.MustAccount(t, "celeb"), s.MustAccount(t, "known")
			fans := []*tu.Account{s.MustAccount(t, "fan1"), s.MustAccount(t, "fan2"), s.MustAccount(t, "fan3")}
			for _, f := range fans {
				a.mustFollow(f.AccessToken, celeb.ID)
			}
			a.mustFollow(fans[0].AccessToken, known.ID)
			newbie := s.MustAccount(t, "newbie")
			for _, tr := range tu.Transports {
				a := api{t: t, s: s, tr: tr}
				got := a.suggestions(newbie.AccessToken, 0)
				checkOrdered(t, got)
				if !slices.Equal(suggestionIDs(got), []string{celeb.ID, known.ID}) {
					t.Fatalf("%s: new user's suggestions = %v, want celeb, known", tr, got)
				}
				for _, g := range got {
					if g.GetReason() != "Popular on Flock" || g.GetScore() >= 0.75 {
						t.Errorf("%s: %s: %q %v, want Popular on Flock below any graph or topic score", tr, g.GetUser().GetUsername(), g.GetReason(), g.GetScore())
					}
				}
			}
			a.mustFollow(newbie.AccessToken, celeb.ID)
			if got := a.suggestions(newbie.AccessToken, 0); !slices.Equal(suggestionIDs(got), []string{known.ID}) {
				t.Errorf("after following celeb: %v, want known", got)
			}
			// Once every candidate is followed there is nothing left to suggest.
			a.mustFollow(newbie.AccessToken, known.ID)
			if got := a.suggestions(newbie.AccessToken, 0); len(got) != 0 {
				t.Errorf("after following everyone popular: %v, want none", got)
			}
		})
		// Page sizes: default 20, at most 100 (larger is clamped), negative
		// refused; a page costs the same number of queries whatever its size.
		t.Run("page sizes", func(t *testing.T) {
			ctx := context.Background()
			db := s.App.DB()
			me := s.MustAccount(t, "clamper")
			a := api{t: t, s: s, tr: tu.Connect}
			a.interests(me.AccessToken, "birds")
			// 130 accounts into birds, inserted directly (registration is slow).
			now := time.Now().UTC()
			users := make([]store.User, 130)
			interests := make([]store.UserInterest, len(users))
			for i := range users {
				id := store.NewID()
				users[i] = store.User{ID: id, Username: fmt.Sprintf("birder%d", i), Email: fmt.Sprintf("birder%d@example.com", i),
					PasswordHash: "x", Role: store.RoleMember, EmailVerifiedAt: &now, CreatedAt: now, UpdatedAt: now}
				interests[i] = store.UserInterest{UserID: id, Interest: "birds"}
			}
			if _, err := db.NewInsert().Model(&users).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := db.NewInsert().Model(&interests).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			for _, tr := range tu.Transports {
				a := api{t: t, s: s, tr: tr}
				for size, want := range map[int32]int{0: 20, 1: 1, 7: 7, 100: 100, 101: 100, 1000: 100} {
					got := a.suggestions(me.AccessToken, size)
					if len(got) != want {
						t.Errorf("%s: page size %d gave %d suggestions, want %d", tr, size, len(got), want)
					}
					checkOrdered(t, got)
				}
				_, err := call[flockv1.SuggestUsersResponse](a, flockv1connect.UserServiceSuggestUsersProcedure, me.AccessToken, &flockv1.SuggestUsersRequest{PageSize: -1})
				wantCode(t, err, connect.CodeInvalidArgument)
				_, err = call[flockv1.SuggestUsersResponse](a, flockv1connect.UserServiceSuggestUsersProcedure, "", &flockv1.SuggestUsersRequest{})
				wantCode(t, err, connect.CodeUnauthenticated)
			}

			counter := &queryCounter{}
			db.AddQueryHook(counter)
			queries := func(size int32) int64 {
				before := counter.n.Load()
				if got := a.suggestions(me.AccessToken, size); len(got) != int(size) {
					t.Fatalf("page of %d has %d suggestions", size, len(got))
				}
				return counter.n.Load() - before
			}
			if small, large := queries(2), queries(100); small != large {
				t.Errorf("a page of 2 takes %d queries and one of 100 takes %d: cost grows with the page", small, large)
			}
		})
	})
}
