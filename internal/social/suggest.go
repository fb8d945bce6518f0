package social

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/page"
	"github.com/flock-social/flock/internal/store"
)

// Follow suggestions come from two sources, each read by bounded queries:
//
//   - the graph: accounts followed by the people the caller follows, worth
//     GraphWeight for each of those people ("Followed by alice and 2 others
//     you follow");
//   - topics: the caller's profile interests and the hashtags they recently
//     used and liked; accounts with those interests, or that recently wrote
//     public posts with those hashtags, are worth TopicWeight per shared
//     topic ("Also into #golang and #rust").
//
// An account found by both adds the two. When they give fewer suggestions
// than asked (a new account has neither graph nor topics), the most
// followed accounts fill the rest ("Popular on Flock"), scored below any
// account the two sources found. Never suggested: the caller, accounts
// they follow, anyone a block stands between with them either way,
// suspended and unverified accounts.
const (
	GraphWeight = 1.0
	TopicWeight = 0.75
	// popularWeight bounds a popular account's score: always below
	// TopicWeight, the least a graph or topic suggestion scores.
	popularWeight = 0.5
)

// Bounds of the candidate queries.
const (
	// suggestFollowees is how many of the caller's followees (the most
	// recently followed) the graph query walks.
	suggestFollowees = 500
	// suggestRecent is how many of the caller's newest posts, and of their
	// likes, give hashtags.
	suggestRecent = 200
	// suggestTopics caps the caller's topics (profile interests first,
	// those they also post or like about before the others).
	suggestTopics = 10
	// Per topic, the candidates are the authors of its newest
	// suggestPostsPerTopic posts (as a hashtag, within suggestWindow; the
	// public ones) and the newest suggestUsersPerTopic accounts with it
	// among their interests.
	suggestPostsPerTopic = 30
	suggestUsersPerTopic = 100
	suggestWindow        = 30 * 24 * time.Hour
)

// ReasonPopular is the reason given for a popular account.
const ReasonPopular = "Popular on Flock"

// Suggestion is an account the caller might follow, with why.
type Suggestion struct {
	User   *UserView
	Reason string
	Score  float64
}

// SuggestUsers returns up to size (default 20, at most 100) accounts for
// the caller to follow, best first (score, then newest account). It
// costs at most six queries whatever the size: the caller's topics, the
// graph candidates, the topic candidates, the popular accounts (only when
// the first two fall short), and the relationships.
func (s *Service) SuggestUsers(ctx context.Context, p *account.Principal, size int32) ([]Suggestion, error) {
	n := page.Size(size)
	// Each source returns a pool larger than the page, so that accounts
	// found by both can rise above ones found by one.
	pool := min(2*n+20, 3*page.MaxSize)

	topics, err := s.db.SuggestTopics(ctx, s.db, p.UserID, suggestRecent, suggestTopics)
	if err != nil {
		return nil, fmt.Errorf("suggest users: %w", err)
	}
	graph, err := s.db.SuggestByGraph(ctx, s.db, p.UserID, suggestFollowees, pool)
	if err != nil {
		return nil, fmt.Errorf("suggest users: %w", err)
	}
	topical, err := s.db.SuggestByTopics(ctx, s.db, p.UserID, store.TopicSearch{
		Topics: topics, Since: s.db.Now().Add(-suggestWindow),
		PostsPerTopic: suggestPostsPerTopic, UsersPerTopic: suggestUsersPerTopic, Limit: pool,
	})
	if err != nil {
		return nil, fmt.Errorf("suggest users: %w", err)
	}

	type candidate struct {
		user          *store.User
		graph, topics string // the two halves of the reason
		score         float64
	}
	byID := make(map[string]*candidate, len(graph)+len(topical))
	get := func(u *store.User) *candidate {
		c := byID[u.ID]
		if c == nil {
			c = &candidate{user: u}
			byID[u.ID] = c
		}
		return c
	}
	for _, g := range graph {
		c := get(g.User)
		c.score += GraphWeight * float64(g.Mutual)
		c.graph = graphReason(g.Via, g.Mutual)
	}
	for _, t := range topical {
		c := get(t.User)
		c.score += TopicWeight * float64(t.Shared)
		c.topics = topicReason(t.FirstTopic, t.LastTopic, t.Shared)
	}
	found := make([]*candidate, 0, len(byID))
	for _, c := range byID {
		found = append(found, c)
	}
	slices.SortFunc(found, func(a, b *candidate) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return strings.Compare(b.user.ID, a.user.ID)
	})
	found = found[:min(len(found), n)]

	if len(found) < n {
		// n rows cover the missing ones even when every account already
		// found comes back among them.
		popular, err := s.db.SuggestPopular(ctx, s.db, p.UserID, n)
		if err != nil {
			return nil, fmt.Errorf("suggest users: %w", err)
		}
		for _, u := range popular {
			if len(found) == n {
				break
			}
			if byID[u.ID] != nil {
				continue
			}
			// Monotonic in the follower count and below popularWeight, so
			// that score order is the query's order.
			score := popularWeight * float64(u.FollowersCount) / float64(u.FollowersCount+10)
			found = append(found, &candidate{user: u, score: score})
		}
	}

	users := make([]*store.User, len(found))
	for i, c := range found {
		users[i] = c.user
	}
	views, err := s.Views(ctx, s.db, p.UserID, users)
	if err != nil {
		return nil, fmt.Errorf("suggest users: %w", err)
	}
	out := make([]Suggestion, len(found))
	for i, c := range found {
		out[i] = Suggestion{User: views[i], Score: c.score, Reason: joinReasons(c.graph, c.topics)}
	}
	return out, nil
}

// graphReason says who of the caller's followees follow the account.
func graphReason(via string, mutual int) string {
	switch mutual {
	case 1:
		return "Followed by " + via + ", whom you follow"
	case 2:
		return "Followed by " + via + " and 1 other you follow"
	default:
		return fmt.Sprintf("Followed by %s and %d others you follow", via, mutual-1)
	}
}

// topicReason names up to two of the shared topics: "into #go and #rust".
func topicReason(first, last string, shared int) string {
	switch {
	case shared == 1 || first == last:
		return "into " + topicLabel(first)
	case shared == 2:
		return "into " + topicLabel(first) + " and " + topicLabel(last)
	default:
		return fmt.Sprintf("into %s, %s and %d more", topicLabel(first), topicLabel(last), shared-2)
	}
}

// topicLabel shows a one-word topic as a hashtag and others as they are.
func topicLabel(t string) string {
	if strings.ContainsFunc(t, unicode.IsSpace) {
		return t
	}
	return "#" + t
}

func joinReasons(graph, topics string) string {
	switch {
	case graph == "" && topics == "":
		return ReasonPopular
	case topics == "":
		return graph
	case graph == "":
		return "Also " + topics
	}
	return graph + "; also " + topics
}
