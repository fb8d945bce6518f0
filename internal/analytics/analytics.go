// Package analytics counts post views and answers a post's analytics (views,
// unique viewers, likes, comments, in total and per UTC day) to its author.
//
// Reading a post must not write to the database, so views are counted in
// memory: per (post, UTC day) a count, and the set of viewers seen since the
// last flush. A flusher adds them to the store every FlushInterval (and
// early when the buffer grows past MaxKeys, and on Close) in one transaction
// of upserts: post_views_daily.views += n, and one post_viewers row per
// (post, viewer, day), inserted unless it exists. Each instance flushes its
// own increments, so totals are right with any number of instances. A
// failed flush keeps its counts for the next try; beyond MaxHeld buffered
// entries (a database away for long), new views are dropped and counted in
// the log rather than let memory grow without limit.
//
// An author reading analytics sees the views still buffered by the instance
// that answers, added to what is stored; views buffered by other instances
// appear once they flush, within FlushInterval.
package analytics

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/store"
)

// Defaults of Config.
const (
	DefaultFlushInterval = 5 * time.Second
	DefaultMaxKeys       = 10_000
	// flushTimeout bounds one flush, so a hung database cannot hold the
	// flusher (or shutdown) for ever.
	flushTimeout = 30 * time.Second
)

// Days of the per-day series: the default and the most that can be asked.
const (
	DefaultDays = 30
	MaxDays     = 365
)

// Config tunes the view buffer. Zero values take the defaults.
type Config struct {
	// FlushInterval is how often buffered views are written (default 5s).
	FlushInterval time.Duration
	// MaxKeys makes the flusher write early once the buffer holds this many
	// entries: (post, day) counters plus viewers (default 10,000).
	MaxKeys int
	// MaxHeld is the most entries held, counting a flush in progress; views
	// that would add more are dropped (default 10 × MaxKeys).
	MaxHeld int
}

// Service counts views and answers analytics. Start its flusher with Start
// (or run Run yourself) and stop it with Close, which writes what is left.
type Service struct {
	db  *store.DB
	log *slog.Logger
	cfg Config

	mu       sync.Mutex
	buf      *buffer
	inflight int   // entries of the batch being written
	dropped  int64 // views dropped since the last flush because the buffer was full

	// flushing is held by Flush while a batch is neither in buf nor
	// committed, and shared by Get, so that Get counts every view once.
	flushing sync.RWMutex
	// kick asks the flusher for an early flush.
	kick chan struct{}

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// NewService returns a Service that writes views to db.
func NewService(db *store.DB, log *slog.Logger, cfg Config) *Service {
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.MaxHeld <= 0 {
		cfg.MaxHeld = 10 * cfg.MaxKeys
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, log: log, cfg: cfg, buf: newBuffer(), kick: make(chan struct{}, 1)}
}

// CountView counts one read of a post by viewerID ("" counts the view
// without a viewer) on today's UTC day. It touches memory only.
func (s *Service) CountView(postID, viewerID string) {
	if s == nil || postID == "" {
		return
	}
	day := s.db.Now().UTC().Format(store.DayLayout)
	s.mu.Lock()
	if grow := s.buf.growth(postID, day, viewerID); grow > 0 && s.buf.size+s.inflight+grow > s.cfg.MaxHeld {
		s.dropped++
		s.mu.Unlock()
		return
	}
	s.buf.add(postID, day, 1, viewerID)
	full := s.buf.size >= s.cfg.MaxKeys
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default: // a flush is already asked for
		}
	}
}

// Buffered returns how many entries ((post, day) counters plus viewers)
// wait to be written, counting a flush in progress.
func (s *Service) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.size + s.inflight
}

// Flush writes the buffered views in one transaction. On failure they go
// back into the buffer, to be written by the next flush.
func (s *Service) Flush(ctx context.Context) error {
	s.flushing.Lock()
	defer s.flushing.Unlock()
	s.mu.Lock()
	batch := s.buf
	s.buf = newBuffer()
	s.inflight = batch.size
	dropped := s.dropped
	s.dropped = 0
	s.mu.Unlock()
	if dropped > 0 {
		s.log.WarnContext(ctx, "post views dropped: the view buffer was full (is the database reachable?)", "dropped", dropped, "max_held", s.cfg.MaxHeld)
	}
	if batch.size == 0 {
		s.mu.Lock()
		s.inflight = 0
		s.mu.Unlock()
		return nil
	}
	views, viewers := batch.rows()
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return s.db.AddPostViews(ctx, tx, views, viewers)
	})
	s.mu.Lock()
	s.inflight = 0
	if err != nil {
		s.buf.merge(batch)
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("flush post views: %w", err)
	}
	return nil
}

// Run flushes every FlushInterval, and early when the buffer is full,
// until ctx is done. It logs failed flushes, whose views wait for the next.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		// Not cancelled with ctx: a flush that has begun finishes (or
		// times out), so its outcome is known; Close flushes the rest.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
		if err := s.Flush(fctx); err != nil {
			s.log.WarnContext(ctx, "post views not written; keeping them for the next flush", "err", err, "buffered", s.Buffered())
		}
		cancel()
	}
}

// Start runs the flusher in the background until Close.
func (s *Service) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		s.Run(ctx)
	}()
}

// Close stops the flusher started by Start and writes what is buffered. It
// must run before the store closes. Views counted after Close are not
// written.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			s.stop()
			<-s.done
		}
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		defer cancel()
		if err := s.Flush(ctx); err != nil {
			s.log.Error("post views lost at shutdown: the last flush failed", "err", err, "buffered", s.Buffered())
			s.closeErr = err
		}
	})
	return s.closeErr
}

// Day is one UTC day of a post's analytics.
type Day struct {
	// Date is midnight UTC of the day.
	Date                                  time.Time
	Views, UniqueViewers, Likes, Comments int64
}

// Report is a post's analytics.
type Report struct {
	// Views counts every read through GetPost; UniqueViewers the distinct
	// readers. Likes and Comments are the post's current counts.
	Views, UniqueViewers, Likes, Comments int64
	// Daily has one entry per day, oldest first, ending today (UTC).
	Daily []Day
}

// Get returns a post's analytics with a series of days days (DefaultDays
// when days <= 0, at most MaxDays). Author only: ENOTFOUND when the caller
// may not see the post, EFORBIDDEN when they see it but did not write it.
func (s *Service) Get(ctx context.Context, p *account.Principal, postID string, days int) (*Report, error) {
	if days <= 0 {
		days = DefaultDays
	}
	days = min(days, MaxDays)
	visible, err := s.db.PostVisible(ctx, s.db, p.UserID, postID)
	if err != nil {
		return nil, fmt.Errorf("post analytics: %w", err)
	}
	if !visible {
		return nil, flock.Errorf(flock.ENOTFOUND, "post %q not found", postID)
	}
	post, err := s.db.GetPostCounters(ctx, s.db, postID)
	if store.IsNotFound(err) {
		return nil, flock.Errorf(flock.ENOTFOUND, "post %q not found", postID)
	} else if err != nil {
		return nil, fmt.Errorf("post analytics: %w", err)
	}
	if post.AuthorID != p.UserID {
		return nil, flock.Errorf(flock.EFORBIDDEN, "only the author may see a post's analytics")
	}

	now := s.db.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	from := today.AddDate(0, 0, -(days - 1))
	fromDay := from.Format(store.DayLayout)

	// No flush may move views from the buffer to the store while they are
	// read from both.
	s.flushing.RLock()
	defer s.flushing.RUnlock()
	r := &Report{Likes: post.LikesCount, Comments: post.CommentsCount}
	if r.Views, r.UniqueViewers, err = s.db.PostViewTotals(ctx, s.db, postID); err != nil {
		return nil, fmt.Errorf("post analytics: %w", err)
	}
	daily, err := s.db.PostDailyStats(ctx, s.db, postID, from)
	if err != nil {
		return nil, fmt.Errorf("post analytics: %w", err)
	}

	// Add this instance's buffered views; a buffered viewer counts once a
	// day and once in all unless the store has them already.
	pending := s.pending(postID)
	var pendingViewers []string
	seen := map[string]bool{}
	for _, e := range pending {
		for v := range e.viewers {
			if !seen[v] {
				seen[v] = true
				pendingViewers = append(pendingViewers, v)
			}
		}
	}
	var stored map[string][]string
	if len(pendingViewers) > 0 {
		if stored, err = s.db.PostViewersAmong(ctx, s.db, postID, pendingViewers); err != nil {
			return nil, fmt.Errorf("post analytics: %w", err)
		}
	}
	for _, v := range pendingViewers {
		if _, ok := stored[v]; !ok {
			r.UniqueViewers++
		}
	}
	for day, e := range pending {
		r.Views += e.views
		if day < fromDay {
			continue
		}
		d := daily[day]
		if d == nil {
			d = &store.PostDay{Day: day}
			daily[day] = d
		}
		d.Views += e.views
		for v := range e.viewers {
			if !slices.Contains(stored[v], day) {
				d.UniqueViewers++
			}
		}
	}

	r.Daily = make([]Day, days)
	for i := range r.Daily {
		date := from.AddDate(0, 0, i)
		r.Daily[i] = Day{Date: date}
		if d := daily[date.Format(store.DayLayout)]; d != nil {
			r.Daily[i] = Day{Date: date, Views: d.Views, UniqueViewers: d.UniqueViewers, Likes: d.Likes, Comments: d.Comments}
		}
	}
	return r, nil
}

// pending copies what the buffer holds for one post, by day.
func (s *Service) pending(postID string) map[string]*entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]*entry, len(s.buf.posts[postID]))
	for day, e := range s.buf.posts[postID] {
		c := &entry{views: e.views, viewers: make(map[string]struct{}, len(e.viewers))}
		for v := range e.viewers {
			c.viewers[v] = struct{}{}
		}
		out[day] = c
	}
	return out
}

// entry is what one (post, day) gathered since the last flush.
type entry struct {
	views   int64
	viewers map[string]struct{}
}

// buffer holds views not written yet.
type buffer struct {
	posts map[string]map[string]*entry // post ID → UTC day → entry
	// size counts the entries: (post, day) counters plus viewers.
	size int
}

func newBuffer() *buffer { return &buffer{posts: map[string]map[string]*entry{}} }

// growth is how many entries adding a view would make.
func (b *buffer) growth(postID, day, viewerID string) int {
	e := b.posts[postID][day]
	switch {
	case e == nil && viewerID != "":
		return 2
	case e == nil:
		return 1
	case viewerID == "":
		return 0
	}
	if _, ok := e.viewers[viewerID]; ok {
		return 0
	}
	return 1
}

func (b *buffer) add(postID, day string, views int64, viewerID string) {
	days := b.posts[postID]
	if days == nil {
		days = map[string]*entry{}
		b.posts[postID] = days
	}
	e := days[day]
	if e == nil {
		e = &entry{}
		days[day] = e
		b.size++
	}
	e.views += views
	if viewerID == "" {
		return
	}
	if e.viewers == nil {
		e.viewers = map[string]struct{}{}
	}
	if _, ok := e.viewers[viewerID]; !ok {
		e.viewers[viewerID] = struct{}{}
		b.size++
	}
}

// merge adds other's counts and viewers to b.
func (b *buffer) merge(other *buffer) {
	for postID, days := range other.posts {
		for day, e := range days {
			b.add(postID, day, e.views, "")
			for v := range e.viewers {
				b.add(postID, day, 0, v)
			}
		}
	}
}

// rows returns the buffer as rows, sorted by primary key so that concurrent
// flushes of several instances lock rows in one order.
func (b *buffer) rows() ([]store.PostViewsDaily, []store.PostViewer) {
	var (
		views   []store.PostViewsDaily
		viewers []store.PostViewer
	)
	for postID, days := range b.posts {
		for day, e := range days {
			if e.views > 0 {
				views = append(views, store.PostViewsDaily{PostID: postID, Day: day, Views: e.views})
			}
			for v := range e.viewers {
				viewers = append(viewers, store.PostViewer{PostID: postID, ViewerID: v, Day: day})
			}
		}
	}
	slices.SortFunc(views, func(a, b store.PostViewsDaily) int {
		return cmp.Or(cmp.Compare(a.PostID, b.PostID), cmp.Compare(a.Day, b.Day))
	})
	slices.SortFunc(viewers, func(a, b store.PostViewer) int {
		return cmp.Or(cmp.Compare(a.PostID, b.PostID), cmp.Compare(a.ViewerID, b.ViewerID), cmp.Compare(a.Day, b.Day))
	})
	return views, viewers
}
