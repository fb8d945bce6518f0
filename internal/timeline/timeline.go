// Package timeline keeps materialized home timelines: per user, the ids
// of their feed's newest posts, so a page of the feed reads a few index
// entries instead of merging the posts of everyone they follow.
//
// SQL stays the truth. A page is the timeline's ids filtered by the feed's
// visibility rule in the same query that loads the posts (store.ListPosts
// with Candidates), so an entry that has become invisible (an unfollow, a
// block, a suspension, leaving a group) is skipped, never shown; a
// timeline may lack a post only where it knows it does (below its floor,
// or before its first fill), and there the feed is read from the posts.
//
// Writes:
//   - a new post is marked pending in its own transaction and a fan-out
//     job (River, internal/jobs) writes it into the timelines of its
//     readers that have one: its group's members, or its author and the
//     author's followers. Until the job is done, every read merges the
//     pending posts, so a post is in its readers' feeds from its commit on.
//   - authors with at least Config.BigAuthor followers are not written to
//     their followers' timelines; a reader merges the newest posts of the
//     big authors they follow (Twitter's and Mastodon's hybrid).
//   - a follow or a group join adds the new source's posts down to the
//     timeline's floor in the same transaction (store.CreateFollow,
//     store.PutMembership); an unfollow removes the followee's posts.
//   - signing in (Warm), or else a user's first feed read, creates their
//     timeline (state building) and queues its fill (one job fills the
//     timelines started together, with their newest store.FillSize
//     posts); reads go to SQL until it is ready, and below its floor after.
//   - timelines keep their newest store.TimelineSize entries (trimmed on
//     read, at most every 10 minutes; between trims fan-outs may add more)
//     and are dropped after Config.IdleAfter without a read.
package timeline

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/flock-social/flock/internal/jobs"
	"github.com/flock-social/flock/internal/store"
)

// Config configures timelines.
type Config struct {
	// BigAuthor is the follower count from which an author's posts are
	// merged at read time instead of written to every follower's timeline
	// (default 5,000).
	BigAuthor int64
	// Workers is how many fan-out and fill jobs this instance runs at once
	// (default 2; below zero none: other instances run them).
	Workers int
	// IdleAfter drops a timeline not read for this long (default 14 days).
	IdleAfter time.Duration
}

func (c *Config) defaults() {
	if c.BigAuthor <= 0 {
		c.BigAuthor = 5000
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.IdleAfter <= 0 {
		c.IdleAfter = 14 * 24 * time.Hour
	}
}

// Service reads and writes timelines.
type Service struct {
	db    *store.DB
	queue *jobs.Queue
	cfg   Config
	log   *slog.Logger
	stats struct {
		mu sync.Mutex
		Stats
	}
	// queuedBatch is the last fan-out batch this instance queued a job for.
	queuedBatch atomic.Int64
	// draining is set while a drain runs on this instance.
	draining atomic.Bool
	// queuedFill is the last fill batch this instance queued a job for;
	// filling is set while fillAll runs.
	queuedFill atomic.Int64
	filling    atomic.Bool
}

// NewService returns a Service whose jobs run on q (registered here, before
// q opens).
func NewService(db *store.DB, q *jobs.Queue, cfg Config, log *slog.Logger) *Service {
	cfg.defaults()
	s := &Service{db: db, queue: q, cfg: cfg, log: log}
	jobs.AddWorker(q, &fanoutWorker{s: s})
	jobs.AddWorker(q, &fillWorker{s: s})
	jobs.AddWorker(q, &maintainWorker{s: s})
	jobs.AddQueue(q, queueName, cfg.Workers)
	if cfg.Workers > 0 {
		q.AddPeriodic(maintainEvery, func() river.JobArgs { return maintainArgs{} }, true)
	}
	return s
}

// Posted marks a new post's fan-out pending and queues it, in the post's
// transaction. Posts of the same moment share one job (see fanoutArgs).
func (s *Service) Posted(ctx context.Context, tx bun.Tx, postID string) error {
	if err := s.db.AddPendingPost(ctx, tx, postID); err != nil {
		return err
	}
	// Should the post's transaction roll back, the other posts of its
	// batch wait for the next job or the 2 s sweep; reads merge them
	// meanwhile.
	batch := batchOf(time.Now())
	if err := s.queueOnce(ctx, tx, &s.queuedBatch, batch, fanoutArgs{Batch: batch}); err != nil {
		return fmt.Errorf("queue fan-out: %w", err)
	}
	return nil
}

// queueOnce queues args in tx unless this instance already queued the job
// of batch (last holds the batch it last queued): the first post or
// timeline of a batch period queues the period's job, the others find it
// queued (River's insert, even one that finds a duplicate, cost a quarter
// of a post's CPU on SQLite).
func (s *Service) queueOnce(ctx context.Context, tx bun.Tx, last *atomic.Int64, batch int64, args river.JobArgs) error {
	if last.Swap(batch) == batch {
		return nil
	}
	if err := s.queue.InsertTx(ctx, tx, args, nil); err != nil {
		last.Store(0)
		return err
	}
	return nil
}

// How a page reads the timeline: first a few ids more than the posts
// wanted (entries that turn out invisible leave room; unfollows remove
// theirs, so few do), then 4 times as many per further round.
const (
	firstReadExtra = 4
	growFactor     = 4
	minRead        = 8
	touchEvery     = 10 * time.Minute
)

// Feed returns up to limit posts of viewerID's home feed below beforeID
// ("" for the newest), newest first, with their hashtags and likedByMe.
// It reads the viewer's timeline when it is ready, the posts otherwise.
func (s *Service) Feed(ctx context.Context, viewerID, beforeID string, limit int) ([]*store.Post, error) {
	var out []*store.Post
	before, read := beforeID, max(limit+firstReadExtra, minRead)
	for {
		t, ids, pending, err := s.db.TimelineHead(ctx, s.db, viewerID, before, read)
		if err != nil {
			return nil, err
		}
		if t == nil || t.State != store.TimelineReady {
			if t == nil {
				s.start(ctx, viewerID)
			}
			s.count(func(st *Stats) { st.Fallbacks++ })
			return s.fromPosts(ctx, out, viewerID, before, limit)
		}
		if len(out) == 0 && s.db.Now().Sub(t.ReadAt) > touchEvery {
			s.touch(ctx, viewerID)
		}
		if before != "" && before <= t.FloorID {
			// A page older than anything the timeline holds.
			s.count(func(st *Stats) { st.Fallbacks++ })
			return s.fromPosts(ctx, out, viewerID, before, limit)
		}
		// The ids cover [lower, before): below lower, entries not read
		// yet, or (at the floor) posts the timeline does not hold.
		lower, more := t.FloorID, len(ids) == read
		if more {
			lower = ids[len(ids)-1]
		}
		posts, err := s.db.ListPosts(ctx, s.db, store.PostFilter{
			ViewerID: viewerID, FeedOf: viewerID, Timeline: true, Candidates: append(ids, pending...), MergeBig: t.FollowsBig,
			BeforeID: before, FloorID: lower, Limit: limit - len(out),
		})
		if err != nil {
			return nil, err
		}
		out = append(out, posts...)
		switch {
		case len(out) >= limit:
			s.count(func(st *Stats) { st.Reads++ })
			return out, nil
		case more:
			before, read = lower, read*growFactor
		case t.FloorID == "":
			s.count(func(st *Stats) { st.Reads++ })
			return out, nil // the whole feed was in the timeline
		default:
			s.count(func(st *Stats) { st.Fallbacks++ })
			return s.fromPosts(ctx, out, viewerID, t.FloorID, limit)
		}
	}
}

// fromPosts completes a page from the posts themselves, with no timeline
// (fan-in on read): the newest ids of the feed's sources take the place of
// a timeline's entries and are filtered by the same statement, read a few
// more than wanted and then 4 times as many per round, like entries.
func (s *Service) fromPosts(ctx context.Context, out []*store.Post, viewerID, before string, limit int) ([]*store.Post, error) {
	read := max(limit-len(out)+firstReadExtra, minRead)
	for {
		ids, err := s.db.FeedCandidates(ctx, s.db, viewerID, before, read)
		if err != nil {
			return nil, err
		}
		// The ids cover [lower, before), all of the feed below before
		// when fewer came than asked for.
		lower, more := "", len(ids) == read
		if more {
			lower = ids[len(ids)-1]
		}
		posts, err := s.db.ListPosts(ctx, s.db, store.PostFilter{
			ViewerID: viewerID, FeedOf: viewerID, Timeline: true, Candidates: ids,
			BeforeID: before, FloorID: lower, Limit: limit - len(out),
		})
		if err != nil {
			return nil, err
		}
		out = append(out, posts...)
		if len(out) >= limit || !more {
			return out, nil
		}
		before, read = lower, read*growFactor
	}
}

// Warm starts userID's timeline, when they have none, and queues its
// fill, in tx: the server sets it as account.Config.SignedIn, which runs
// in the transaction that signs a user in or refreshes their session, so that the fill runs while the
// client gets ready, and the first page after signing in reads a ready
// timeline instead of merging the posts and queueing the fill itself
// (Mastodon likewise rebuilds a returning user's home feed when they sign
// in). A timeline already there is left as it is. Timelines are dropped
// after Config.IdleAfter without a read, so a client whose session
// outlives that warms it again at its next refresh; a read that finds
// none still starts it (start).
func (s *Service) Warm(ctx context.Context, tx bun.Tx, userID string) error {
	t, err := s.db.StartTimeline(ctx, tx, userID)
	if err != nil || t == nil {
		return err
	}
	batch := batchOf(time.Now())
	return s.queueOnce(ctx, tx, &s.queuedFill, batch, fillArgs{Batch: batch})
}

// start creates viewerID's timeline and queues its fill, together; the
// read that calls it goes on from the posts. Failing, it only logs: the
// next read tries again.
func (s *Service) start(ctx context.Context, userID string) {
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return s.Warm(ctx, tx, userID)
	})
	if err != nil {
		s.log.WarnContext(ctx, "start timeline", "user", userID, "err", err)
	}
}

// touch records a read and trims the timeline; failing, it only logs.
func (s *Service) touch(ctx context.Context, userID string) {
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return s.db.TouchTimeline(ctx, tx, userID, store.TimelineSize)
	})
	if err != nil {
		s.log.WarnContext(ctx, "touch timeline", "user", userID, "err", err)
	}
}

// Stats counts what timelines did on this instance since it started.
type Stats struct {
	// Reads is feed pages served from a timeline; Fallbacks, those (or
	// their ends) read from the posts (no timeline yet, or below its floor).
	Reads, Fallbacks uint64
	// Fanouts is fan-out jobs done, Entries the timeline entries they
	// wrote, FanoutSeconds their total time.
	Fanouts, Entries uint64
	FanoutSeconds    float64
	// Fills is timelines filled.
	Fills uint64
}

// Stats returns this instance's counts.
func (s *Service) Stats() Stats {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	return s.stats.Stats
}

func (s *Service) count(f func(*Stats)) {
	s.stats.mu.Lock()
	f(&s.stats.Stats)
	s.stats.mu.Unlock()
}
