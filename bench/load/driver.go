package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// account is a logged-in user.
type account struct {
	id, name, token string
}

// world is what the scenarios pick from: logged-in accounts, other users'
// IDs, recent public posts and hashtags.
type world struct {
	accounts []account
	userIDs  []string
	postIDs  []string
	tags     int
}

// A scenario makes one request as w's account.
type scenario func(ctx context.Context, a api, w *worker) error

type worker struct {
	acct  account
	world *world
	r     *rand.Rand
	n     int // requests made so far by this worker
	id    int
}

func (w *worker) postID() string  { return w.world.postIDs[w.r.IntN(len(w.world.postIDs))] }
func (w *worker) userID() string  { return w.world.userIDs[w.r.IntN(len(w.world.userIDs))] }
func (w *worker) hashtag() string { return fmt.Sprintf("topic%d", 1+w.r.IntN(min(w.world.tags, 20))) }

var scenarios = map[string]scenario{
	"feed": func(ctx context.Context, a api, w *worker) error { return a.feed(ctx, w.acct.token) },
	"post": func(ctx context.Context, a api, w *worker) error {
		return a.createPost(ctx, w.acct.token, fmt.Sprintf("Load post %d of worker %d about #%s", w.n, w.id, w.hashtag()))
	},
	"like": func(ctx context.Context, a api, w *worker) error { return a.like(ctx, w.acct.token, w.postID()) },
	"comment": func(ctx context.Context, a api, w *worker) error {
		return a.comment(ctx, w.acct.token, w.postID(), fmt.Sprintf("Load comment %d of worker %d", w.n, w.id))
	},
	"profile": func(ctx context.Context, a api, w *worker) error { return a.getUser(ctx, w.acct.token, w.userID()) },
	"me":      func(ctx context.Context, a api, w *worker) error { return a.me(ctx, w.acct.token) },
	// comments: the first page of a recent public post's comments.
	"comments": func(ctx context.Context, a api, w *worker) error { return a.comments(ctx, w.acct.token, w.postID()) },
	// notifications: the first page of one's notifications, with the
	// unread count (what the web app's badge asks for at each one).
	"notifications": func(ctx context.Context, a api, w *worker) error { return a.notifications(ctx, w.acct.token) },
	// activity: the first page of one's activity log.
	"activity": func(ctx context.Context, a api, w *worker) error { return a.activity(ctx, w.acct.token) },
	"search": func(ctx context.Context, a api, w *worker) error {
		if w.n%2 == 0 {
			return a.searchPosts(ctx, w.acct.token, w.hashtag())
		}
		return a.searchUsers(ctx, w.acct.token, fmt.Sprintf("user%03d", w.r.IntN(1000)))
	},
}

// mixed picks from scenarios, so it joins them once they exist.
func init() { scenarios["mixed"] = mixed }

// mixWeights is the mixed scenario: mostly reading feeds and profiles, a
// few writes.
var mixWeights = []struct {
	name   string
	weight int
}{{"feed", 50}, {"profile", 10}, {"me", 5}, {"search", 10}, {"like", 15}, {"comment", 5}, {"post", 5}}

func mixed(ctx context.Context, a api, w *worker) error {
	total := 0
	for _, m := range mixWeights {
		total += m.weight
	}
	k := w.r.IntN(total)
	for _, m := range mixWeights {
		if k < m.weight {
			return scenarios[m.name](ctx, a, w)
		}
		k -= m.weight
	}
	panic("unreachable")
}

// scenarioNames lists the scenarios in a stable order for -help.
func scenarioNames() []string {
	var names []string
	for n := range scenarios {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// load is one measured run of a scenario.
type load struct {
	api         api
	world       *world
	sc          scenario
	concurrency int
	duration    time.Duration
	requests    int // > 0: stop after this many instead of after duration
	// perAccount > 0: each of the first perAccount accounts makes exactly
	// one request (the first pass over cold feeds).
	onePerAccount bool
}

// stats are the latencies and errors of a run.
type stats struct {
	latencies []time.Duration
	errors    int
	samples   []string
	elapsed   time.Duration
}

func (l load) run(ctx context.Context) *stats {
	var (
		mu      sync.Mutex
		st      = &stats{}
		issued  atomic.Int64
		wg      sync.WaitGroup
		start   = time.Now()
		stopAt  = start.Add(l.duration)
		budget  = int64(l.requests)
		workers = l.concurrency
	)
	if l.onePerAccount {
		budget = int64(len(l.world.accounts))
	}
	for i := range workers {
		wg.Go(func() {
			w := &worker{acct: l.world.accounts[i%len(l.world.accounts)], world: l.world, r: rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano()))), id: i}
			var lat []time.Duration
			var errs []error
			for {
				k := issued.Add(1)
				if budget > 0 && k > budget || budget == 0 && time.Now().After(stopAt) || ctx.Err() != nil {
					break
				}
				if l.onePerAccount {
					w.acct = l.world.accounts[k-1]
				}
				t := time.Now()
				err := l.sc(ctx, l.api, w)
				lat = append(lat, time.Since(t))
				if err != nil {
					errs = append(errs, err)
				}
				w.n++
			}
			mu.Lock()
			defer mu.Unlock()
			st.latencies = append(st.latencies, lat...)
			st.errors += len(errs)
			for _, err := range errs {
				if len(st.samples) < 3 && !slices.Contains(st.samples, err.Error()) {
					st.samples = append(st.samples, err.Error())
				}
			}
		})
	}
	wg.Wait()
	st.elapsed = time.Since(start)
	slices.Sort(st.latencies)
	return st
}

// quantile returns the q-quantile of the sorted latencies.
func (s *stats) quantile(q float64) time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	return s.latencies[min(len(s.latencies)-1, int(q*float64(len(s.latencies))))]
}

// writer posts at a fixed rate in the background (feeds "while posts keep
// arriving"); its requests are counted apart.
type writer struct {
	api   api
	world *world
	rate  float64

	posts, errors atomic.Int64
	firstErr      atomic.Value
	stop          context.CancelFunc
	done          sync.WaitGroup
}

func startWriter(ctx context.Context, a api, wd *world, rate float64) *writer {
	ctx, cancel := context.WithCancel(ctx)
	wr := &writer{api: a, world: wd, rate: rate, stop: cancel}
	wr.done.Go(func() {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		var inflight sync.WaitGroup
		defer inflight.Wait()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			acct := wd.accounts[(len(wd.accounts)-1-i%len(wd.accounts)+len(wd.accounts))%len(wd.accounts)]
			inflight.Go(func() {
				err := a.createPost(ctx, acct.token, fmt.Sprintf("Arriving post %d about #topic%d", i, 1+i%7))
				switch {
				case err == nil:
					wr.posts.Add(1)
				case ctx.Err() == nil:
					wr.errors.Add(1)
					wr.firstErr.CompareAndSwap(nil, err.Error())
				}
			})
		}
	})
	return wr
}

// end stops the writer and waits for its requests in flight.
func (wr *writer) end() {
	wr.stop()
	wr.done.Wait()
}
