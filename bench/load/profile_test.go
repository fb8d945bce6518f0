package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/flock-social/flock/internal/store"
)

func TestZipfExponentGivesTheTopRankItsShare(t *testing.T) {
	for _, tc := range []struct {
		n int
		p float64
	}{{100_000, 0.01}, {200, 0.015}, {5_000, 0.01}} {
		s := zipfExponent(tc.n, tc.p)
		if got := newZipf(tc.n, s).top(); got < tc.p*0.99 || got > tc.p*1.01 {
			t.Errorf("n=%d: exponent %.3f gives rank 0 probability %.5f, want %.5f", tc.n, s, got, tc.p)
		}
	}
	if s := zipfExponent(100, 0.001); s != 0 {
		t.Errorf("a share below uniform gives exponent %v, want 0 (uniform)", s)
	}
}

func TestZipfDrawsFollowTheDistribution(t *testing.T) {
	z := newZipf(1000, 1)
	r := rand.New(rand.NewPCG(1, 2))
	counts := make([]int, 1000)
	const draws = 200_000
	for range draws {
		counts[z.draw(r)]++
	}
	// P(0) = 1/H(1000) = 0.1336, P(1) half of it.
	if got := float64(counts[0]) / draws; got < 0.128 || got > 0.139 {
		t.Errorf("rank 0 drawn %.4f of the time, want about 0.1336", got)
	}
	if ratio := float64(counts[0]) / float64(counts[1]); ratio < 1.85 || ratio > 2.15 {
		t.Errorf("rank 0 / rank 1 = %.2f, want about 2", ratio)
	}
}

func TestIDsAreValidAndOrderedByTime(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	prev := ""
	for i := range 1000 {
		id := idAt(base.Add(time.Duration(i)*time.Millisecond), r).String()
		if !store.ValidID(id) {
			t.Fatalf("%q is not a valid ID", id)
		}
		if id <= prev {
			t.Fatalf("ID %d (%s) does not sort after the one before (%s)", i, id, prev)
		}
		if id < store.IDAt(base) {
			t.Fatalf("ID %s sorts before store.IDAt of its time", id)
		}
		prev = id
	}
}

func TestMediumProfileScaledDown(t *testing.T) {
	p, err := profileFor("medium", 0.05, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	d := generate(p, 1, now)

	t.Run("the top account has about TopFollowers followers", func(t *testing.T) {
		top := slices.MaxFunc(d.users, func(a, b genUser) int { return int(a.followers - b.followers) })
		if lo, hi := int64(float64(p.TopFollowers)*0.7), int64(float64(p.TopFollowers)*1.3); top.followers < lo || top.followers > hi {
			t.Errorf("top account has %d followers, want %d to %d", top.followers, lo, hi)
		}
	})
	t.Run("follows are unique, not of oneself, about Follows in all", func(t *testing.T) {
		if !slices.IsSorted(d.follows) || len(slices.Compact(slices.Clone(d.follows))) != len(d.follows) {
			t.Error("follows are not sorted and unique")
		}
		for _, k := range d.follows {
			if k>>32 == k&0xffffffff {
				t.Fatalf("user %d follows itself", k>>32)
			}
		}
		if extra := len(d.follows) - p.Follows; extra < 0 || extra > heavyFollows+lightFollows+rareFollowees {
			t.Errorf("%d follows, want %d plus the designated accounts'", len(d.follows), p.Follows)
		}
	})
	t.Run("counters match the rows", func(t *testing.T) {
		var followers, following, posts, likes, comments int64
		for _, u := range d.users {
			followers += u.followers
			following += u.following
			posts += u.numPosts
		}
		for _, p := range d.posts {
			likes += p.likes
			comments += p.numComments
		}
		if followers != int64(len(d.follows)) || following != int64(len(d.follows)) || posts != int64(len(d.posts)) ||
			likes != int64(len(d.likes)) || comments != int64(len(d.comments)) {
			t.Errorf("counters %d/%d/%d/%d/%d, rows %d/%d/%d/%d", followers, following, posts, likes, comments,
				len(d.follows), len(d.posts), len(d.likes), len(d.comments))
		}
	})
	t.Run("posts are in ID order, within the last 30 days", func(t *testing.T) {
		for i, p := range d.posts {
			if i > 0 && p.id.Compare(d.posts[i-1].id) <= 0 {
				t.Fatalf("post %d's ID does not sort after the previous one", i)
			}
			if p.at.Before(now.Add(-history)) || p.at.After(now) {
				t.Fatalf("post %d at %v, outside the last 30 days", i, p.at)
			}
		}
	})
	t.Run("rare follows accounts that post least", func(t *testing.T) {
		rare := d.designatedStart() + 2
		var followeePosts int64
		n := 0
		for _, k := range d.follows {
			if int(k>>32) == rare {
				followeePosts += d.users[uint32(k)].numPosts
				n++
			}
		}
		avg := float64(len(d.posts)) / float64(p.Users)
		if n != rareFollowees || float64(followeePosts)/float64(n) > avg/4 {
			t.Errorf("rare follows %d accounts with %d posts in all; want %d with far fewer than the average %.1f each", n, followeePosts, rareFollowees, avg)
		}
	})
	t.Run("the same seed makes the same data", func(t *testing.T) {
		again := generate(p, 1, now)
		if again.posts[len(again.posts)-1].id != d.posts[len(d.posts)-1].id || !slices.Equal(again.likes, d.likes) {
			t.Error("a second generation differs")
		}
	})
}
