package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
)

// Profile is the shape of a seeded database.
type Profile struct {
	Name string
	// Users are the ordinary accounts user000001, user000002, ...
	Users int
	// Follows among the ordinary accounts (their followees drawn from a
	// Zipf distribution), Posts by them, Likes and Comments on public posts.
	Follows, Posts, Likes, Comments int
	// TopFollowers is about the followers of the most followed account.
	TopFollowers int
	// Tags is the number of distinct hashtags (#topic1, #topic2, ...).
	Tags int
	// AuthorSkew is the Zipf exponent of posts per author (0: every
	// account posts about as much; larger: most accounts post rarely).
	AuthorSkew float64
	// Designated adds heavy2000 (follows 2,000 accounts), light50 (follows
	// 50 of the same kind) and rare (follows 50 accounts that post least).
	// They post nothing and nobody follows them.
	Designated bool
	// Fillers are extra accounts filler00001, ... posting as much as an
	// ordinary one, followed only by heavy2000 and light50: in a profile
	// with fewer than 2,000 users they are heavy2000's followees.
	Fillers int
}

// Profiles by name, before -scale and -posts.
var profiles = map[string]Profile{
	// W1 of issue 13, where the feed was first measured.
	"small": {Name: "small", Users: 200, Follows: 10_000, Posts: 5_000, Likes: 10_000, Comments: 2_000,
		TopFollowers: 150, Tags: 50},
	// TopFollowers is set 1.3x above the 50,000: an account is
	// followed at most once per follower, so the draws that would go to
	// the top account again are spent elsewhere and it ends with about
	// 0.78 of the Zipf share (38,920 followers when this said 50,000).
	"medium": {Name: "medium", Users: 100_000, Follows: 5_000_000, Posts: 2_000_000, Likes: 3_000_000, Comments: 1_000_000,
		TopFollowers: 65_000, Tags: 2_000, AuthorSkew: 0.8, Designated: true},
}

// Designated accounts (Profile.Designated).
const (
	heavyUser     = "heavy2000"
	lightUser     = "light50"
	rareUser      = "rare"
	heavyFollows  = 2_000
	lightFollows  = 50
	rareFollowees = 50
)

// profileFor returns the named profile scaled by scale (its counts; Tags and
// the designated accounts stay), with posts overriding its post count when
// > 0 and, when designated is true, heavy2000, light50 and rare (plus
// fillers when it has too few users for heavy2000).
func profileFor(name string, scale float64, posts int, designated bool) (Profile, error) {
	p, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("unknown profile %q (small or medium)", name)
	}
	if scale <= 0 {
		return Profile{}, fmt.Errorf("-scale must be > 0")
	}
	if scale != 1 {
		sc := func(n int) int { return max(1, int(float64(n)*scale+0.5)) }
		p.Users, p.Follows, p.Posts = max(sc(p.Users), 60), sc(p.Follows), sc(p.Posts)
		p.Likes, p.Comments, p.TopFollowers = sc(p.Likes), sc(p.Comments), sc(p.TopFollowers)
		p.Name = fmt.Sprintf("%s@%g", name, scale)
	}
	if posts > 0 {
		p.Posts = posts
		p.Name += fmt.Sprintf("+%dposts", posts)
	}
	p.Designated = p.Designated || designated
	if p.Designated && p.Users < heavyFollows+lightFollows {
		p.Fillers = heavyFollows
	}
	p.Follows = min(p.Follows, p.Users*(p.Users-1))
	return p, nil
}

// Accounts returns the number of accounts the profile makes.
func (p Profile) Accounts() int {
	n := p.Users + p.Fillers
	if p.Designated {
		n += 3
	}
	return n
}

// A dataset is every row of a profile, generated from one seed. Rows are
// kept compact (indexes, not strings); the seeder renders them.
type dataset struct {
	p   Profile
	now time.Time

	users []genUser
	// follows are follower<<32 | followee (user indexes), sorted, unique.
	follows []uint64
	posts   []genPost
	// likes are post<<32 | user, sorted, unique.
	likes    []uint64
	comments []genComment
	seed     uint64
}

type genUser struct {
	id                             ulid.ULID
	name                           string
	created                        time.Time
	followers, following, numPosts int64
}

type genPost struct {
	id                 ulid.ULID
	at                 time.Time
	author             int32
	public             bool
	likes, numComments int64
}

type genComment struct {
	id     ulid.ULID
	at     time.Time
	post   int32
	author int32
}

const (
	day = 24 * time.Hour
	// Everything happens within the 30 days before now: accounts are made
	// in the first of them, posts spread over all of them.
	history = 30 * day
)

// generate makes every row of p, the same rows for the same seed and now.
func generate(p Profile, seed uint64, now time.Time) *dataset {
	d := &dataset{p: p, now: now.UTC().Truncate(time.Microsecond), seed: seed}
	r := rand.New(rand.NewPCG(seed, 1))
	d.makeUsers(r)
	d.makePosts(r)
	d.makeFollows(r)
	d.makeLikes(r)
	d.makeComments(r)
	for _, k := range d.follows {
		d.users[k>>32].following++
		d.users[uint32(k)].followers++
	}
	for i := range d.posts {
		d.users[d.posts[i].author].numPosts++
	}
	for _, k := range d.likes {
		d.posts[k>>32].likes++
	}
	for _, c := range d.comments {
		d.posts[c.post].numComments++
	}
	return d
}

// Index ranges of d.users: ordinary accounts, then fillers, then the
// designated ones.
func (d *dataset) fillerStart() int { return d.p.Users }
func (d *dataset) designatedStart() int {
	return d.p.Users + d.p.Fillers
}

func (d *dataset) makeUsers(r *rand.Rand) {
	n := d.p.Accounts()
	d.users = make([]genUser, n)
	start := d.now.Add(-history - day)
	step := day / time.Duration(n+1)
	for i := range d.users {
		u := &d.users[i]
		switch {
		case i < d.fillerStart():
			u.name = fmt.Sprintf("user%06d", i+1)
		case i < d.designatedStart():
			u.name = fmt.Sprintf("filler%05d", i-d.fillerStart()+1)
		default:
			u.name = []string{heavyUser, lightUser, rareUser}[i-d.designatedStart()]
		}
		u.created = start.Add(time.Duration(i+1) * step).Truncate(time.Microsecond)
		u.id = idAt(u.created, r)
	}
	// Within one millisecond the random part decides; keep the order of creation.
	for i := 1; i < n; i++ {
		if d.users[i].id.Compare(d.users[i-1].id) <= 0 {
			d.users[i].id = next(d.users[i-1].id)
		}
	}
}

// next returns id plus one (its random part incremented).
func next(id ulid.ULID) ulid.ULID {
	for i := len(id) - 1; i >= 6; i-- {
		id[i]++
		if id[i] != 0 {
			break
		}
	}
	return id
}

// makePosts spreads the posts over the history, newest last: ordinary
// accounts' posts by AuthorSkew, and each filler as many as an average
// ordinary account.
func (d *dataset) makePosts(r *rand.Rand) {
	perFiller := max(1, d.p.Posts/max(d.p.Users, 1))
	authors := make([]int32, 0, d.p.Posts+d.p.Fillers*perFiller)
	order := r.Perm(d.p.Users) // who posts most is not who is followed most
	z := newZipf(d.p.Users, d.p.AuthorSkew)
	for range d.p.Posts {
		authors = append(authors, int32(order[z.draw(r)]))
	}
	for f := range d.p.Fillers {
		for range perFiller {
			authors = append(authors, int32(d.fillerStart()+f))
		}
	}
	r.Shuffle(len(authors), func(i, j int) { authors[i], authors[j] = authors[j], authors[i] })

	d.posts = make([]genPost, len(authors))
	start := d.now.Add(-history)
	step := (history - time.Minute) / time.Duration(len(authors)+1)
	for i, a := range authors {
		at := start.Add(time.Duration(i+1) * step)
		if step > 2*time.Millisecond {
			at = at.Add(time.Duration(r.Int64N(int64(step / 2))))
		}
		at = at.Truncate(time.Microsecond)
		d.posts[i] = genPost{id: idAt(at, r), at: at, author: a, public: r.IntN(10) != 0}
		if i > 0 && d.posts[i].id.Compare(d.posts[i-1].id) <= 0 {
			d.posts[i].id = next(d.posts[i-1].id)
		}
	}
}

// makeFollows draws each ordinary account's followees from a Zipf
// distribution over a random ranking of accounts whose exponent gives the
// top one about TopFollowers followers, with out-degrees around the mean,
// then the designated accounts' follows.
func (d *dataset) makeFollows(r *rand.Rand) {
	n := d.p.Users
	follows := make([]uint64, 0, d.p.Follows+heavyFollows+lightFollows+rareFollowees)
	if n > 1 && d.p.Follows > 0 {
		degree := d.degrees(r)
		rank := r.Perm(n)
		z := newZipf(n, zipfExponent(n, float64(d.p.TopFollowers)/float64(d.p.Follows)))
		mark := make([]int32, n) // mark[v] == u+1: u follows v already
		for u := range n {
			for have, tries := 0, 0; have < degree[u]; tries++ {
				v := rank[z.draw(r)]
				if tries > 64*degree[u] {
					v = r.IntN(n) // the skewed draw keeps hitting taken ones
				}
				if v == u || mark[v] == int32(u+1) {
					continue
				}
				mark[v] = int32(u + 1)
				follows = append(follows, uint64(u)<<32|uint64(v))
				have++
			}
		}
	}
	if d.p.Designated {
		ds := d.designatedStart()
		pool := make([]int, 0, max(n, d.p.Fillers)) // heavy2000 and light50 follow accounts of one kind
		if d.p.Fillers > 0 {
			for f := range d.p.Fillers {
				pool = append(pool, d.fillerStart()+f)
			}
		} else {
			for u := range n {
				pool = append(pool, u)
			}
		}
		r.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		for _, v := range pool[:min(heavyFollows, len(pool))] {
			follows = append(follows, uint64(ds)<<32|uint64(v))
		}
		for _, v := range pool[:min(lightFollows, len(pool))] {
			follows = append(follows, uint64(ds+1)<<32|uint64(v))
		}
		for _, v := range d.leastPosting(rareFollowees) {
			follows = append(follows, uint64(ds+2)<<32|uint64(v))
		}
	}
	slices.Sort(follows)
	d.follows = slices.Compact(follows)
}

// degrees returns out-degrees spread evenly between half and one and a
// half times the mean, summing to exactly Follows.
func (d *dataset) degrees(r *rand.Rand) []int {
	n := d.p.Users
	mean := d.p.Follows / n
	deg := make([]int, n)
	sum := 0
	for u := range deg {
		deg[u] = min(n-1, mean/2+r.IntN(mean+1))
		sum += deg[u]
	}
	for sum != d.p.Follows {
		u := r.IntN(n)
		switch {
		case sum < d.p.Follows && deg[u] < n-1:
			deg[u]++
			sum++
		case sum > d.p.Follows && deg[u] > 0:
			deg[u]--
			sum--
		}
	}
	return deg
}

// leastPosting returns k ordinary accounts with the fewest posts, those
// with at least one first (a feed of accounts that rarely post).
func (d *dataset) leastPosting(k int) []int {
	count := make([]int, d.p.Users)
	for _, p := range d.posts {
		if int(p.author) < d.p.Users {
			count[p.author]++
		}
	}
	idx := make([]int, d.p.Users)
	for i := range idx {
		idx[i] = i
	}
	key := func(u int) int {
		if count[u] == 0 {
			return 1 << 30
		}
		return count[u]
	}
	slices.SortStableFunc(idx, func(a, b int) int { return key(a) - key(b) })
	return idx[:min(k, len(idx))]
}

// publicPosts returns the indexes of public posts: likes and comments go
// only where anybody may put them.
func (d *dataset) publicPosts() []int32 {
	var pub []int32
	for i, p := range d.posts {
		if p.public {
			pub = append(pub, int32(i))
		}
	}
	return pub
}

// makeLikes draws Likes distinct (public post, ordinary account) pairs.
func (d *dataset) makeLikes(r *rand.Rand) {
	pub := d.publicPosts()
	want := min(d.p.Likes, len(pub)*d.p.Users)
	if want == 0 {
		return
	}
	likes := make([]uint64, 0, want)
	for len(likes) < want {
		for range want - len(likes) {
			likes = append(likes, uint64(pub[r.IntN(len(pub))])<<32|uint64(r.IntN(d.p.Users)))
		}
		slices.Sort(likes)
		likes = slices.Compact(likes)
	}
	d.likes = likes
}

// makeComments puts Comments on public posts by ordinary accounts, each
// some time after its post.
func (d *dataset) makeComments(r *rand.Rand) {
	pub := d.publicPosts()
	if len(pub) == 0 || d.p.Users == 0 {
		return
	}
	d.comments = make([]genComment, d.p.Comments)
	for i := range d.comments {
		p := pub[r.IntN(len(pub))]
		at := d.later(d.posts[p].at, r.Uint64())
		d.comments[i] = genComment{id: idAt(at, r), at: at, post: p, author: int32(r.IntN(d.p.Users))}
	}
}

// later returns a time between t and now, picked by the hash h.
func (d *dataset) later(t time.Time, h uint64) time.Time {
	return t.Add(time.Duration(unit(h) * float64(d.now.Sub(t)))).Truncate(time.Microsecond)
}

// followedAt is when a follow was made: after both accounts existed.
func (d *dataset) followedAt(key uint64) time.Time {
	a, b := d.users[key>>32].created, d.users[uint32(key)].created
	return d.later(maxTime(a, b), mix(key^d.seed))
}

// likedAt is when a like was made: after its post.
func (d *dataset) likedAt(key uint64) time.Time {
	return d.later(d.posts[key>>32].at, mix(key^d.seed^0x5bd1e995))
}

// content is the text of post i, the same on every call: words and up to
// three hashtags, the popular ones more often.
func (d *dataset) content(i int, tags *zipf) string {
	r := rand.New(rand.NewPCG(d.seed, uint64(i)+1<<40))
	s := fmt.Sprintf("Post %d by %s", i+1, d.users[d.posts[i].author].name)
	for range r.IntN(4) {
		s += fmt.Sprintf(" about #topic%d", tags.draw(r)+1)
	}
	return s
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
