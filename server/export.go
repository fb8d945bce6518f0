package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/export"
	"github.com/flock-social/flock/internal/group"
	"github.com/flock-social/flock/internal/post"
	"github.com/flock-social/flock/internal/store"
)

// exportStall is how long the client of an export may accept no byte
// before the download is cut off: an export holds a database snapshot and
// one of few export slots, which a stalled client must not keep.
const exportStall = 30 * time.Second

// exportAccount serves `GET /api/users/export/` (contract row A8): the
// caller's data as a zip archive (internal/export; the format is in
// docs/accounts.md), streamed as it is made, so that neither the server's
// memory nor the time to the first byte grows with the account.
//
// Refusals before the archive starts are JSON google.rpc.Status bodies,
// like every REST error: 401 without a valid token, 429 past the rate
// limit, 503 (with Retry-After) when this instance runs as many exports as
// it may, and 500 for a failure before the first bytes of the archive have
// left the handler's buffer. Once the 200 and the first bytes are sent, a
// failure can no longer be told with a status: the connection is broken instead
// (http.ErrAbortHandler: HTTP/1.1 closes it without the chunked
// encoding's last chunk, HTTP/2 resets the stream), so that the client
// sees a failed download, never a short archive that looks whole.
func (a *App) exportAccount(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		writeRESTError(w, flock.Errorf(flock.EUNAUTHORIZED, "missing access token: send Authorization: Bearer <accessToken>"))
		return
	}
	p, err := a.accounts.Authenticate(ctx, token)
	if err != nil {
		writeRESTError(w, err)
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/zip")
		return
	}
	if err := a.limitHTTP(w, r, "export", p.UserID); err != nil {
		writeRESTError(w, err)
		return
	}
	out := newStallWriter(w, exportStall)
	defer out.lift()
	// Fewer, larger writes to the connection than the zip writer's 4 KiB.
	buf := bufio.NewWriterSize(out, 64<<10)
	err = a.exports.Export(ctx, p.UserID, exportEncoder{conv: a.conv}, func(u *store.User) io.Writer {
		// The status goes out with the first bytes of the archive (the
		// first Write), so that a failure before them still gets an answer.
		h := w.Header()
		h.Set("Content-Type", "application/zip")
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, exportFilename(u.Username, a.db.Now())))
		h.Set("X-Content-Type-Options", "nosniff")
		return buf
	})
	if err == nil {
		err = buf.Flush()
	}
	switch {
	case err == nil:
		return
	case out.n == 0:
		w.Header().Del("Content-Disposition")
		switch flock.ErrorCode(err) {
		case flock.EUNAVAILABLE:
			w.Header().Set("Retry-After", "30")
		case flock.EINTERNAL:
			a.log.ErrorContext(ctx, "export", "err", err, "request_id", requestID(ctx))
			err = flock.Errorf(flock.EINTERNAL, "internal error (request id %s)", requestID(ctx))
		}
		writeRESTError(w, err)
		return
	}
	if ctx.Err() != nil || errors.Is(err, errStalled) {
		a.log.InfoContext(ctx, "export cut short: the client went away or stalled", "err", err, "request_id", requestID(ctx))
	} else {
		a.log.ErrorContext(ctx, "export failed midway; breaking the connection", "err", err, "request_id", requestID(ctx))
	}
	panic(http.ErrAbortHandler)
}

// exportFilename is the archive's name for the browser's download:
// flock-export-<username>-<UTC date>.zip. Usernames are letters, digits
// and underscores, safe in a quoted header parameter.
func exportFilename(username string, t time.Time) string {
	return "flock-export-" + username + "-" + t.UTC().Format("2006-01-02") + ".zip"
}

var errStalled = errors.New("the client accepted no data for too long")

// stallWriter writes to an HTTP response with a write deadline that moves
// forward as bytes go out: a client that accepts nothing for about the
// stall time loses the connection, a slow but steady one does not (there
// is no total deadline). lift removes the deadline, which would otherwise
// stay on a kept-alive connection.
type stallWriter struct {
	w     io.Writer
	rc    *http.ResponseController
	stall time.Duration
	set   time.Time
	// n counts the bytes written: none means the status is not sent yet.
	n int64
}

func newStallWriter(w http.ResponseWriter, stall time.Duration) *stallWriter {
	return &stallWriter{w: w, rc: http.NewResponseController(w), stall: stall}
}

func (s *stallWriter) Write(p []byte) (int, error) {
	// Moved at most every quarter of the stall time, not once per write;
	// ErrNotSupported leaves the guard off (net/http supports it).
	if now := time.Now(); now.Sub(s.set) > s.stall/4 {
		_ = s.rc.SetWriteDeadline(now.Add(s.stall))
		s.set = now
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: %w", errStalled, err)
	}
	return n, err
}

func (s *stallWriter) lift() { _ = s.rc.SetWriteDeadline(time.Time{}) }

// exportEncoder renders the records of an export as the API answers them
// (proto JSON of flock.v1 messages, zero values included), or as the
// small plain shapes docs/accounts.md documents where the API has no
// message (a like, a follow, a block, a membership).
type exportEncoder struct{ conv converter }

var _ export.Encoder = exportEncoder{}

// Profile is flock.v1.User with the private fields, as GetMe answers.
func (e exportEncoder) Profile(u *store.User) ([]byte, error) {
	return marshalJSON(e.conv.user(u, true))
}

// Post is flock.v1.Post without author (the account's own, in profile.json)
// and with its video's file URLs left out (the files are in the archive).
func (e exportEncoder) Post(p *store.Post, v *store.Video) ([]byte, error) {
	out := e.conv.post(&post.View{Post: p, LikedByMe: p.LikedByMe, Video: v}, p.AuthorID)
	if out.Video != nil {
		out.Video.PlaybackUrl, out.Video.PosterUrl = "", ""
	}
	return marshalJSON(out)
}

// Comment is flock.v1.Comment without author.
func (e exportEncoder) Comment(c *store.Comment) ([]byte, error) {
	return marshalJSON(e.conv.comment(&post.CommentView{Comment: c}, c.AuthorID))
}

// Video is flock.v1.Video with its file URLs left out.
func (e exportEncoder) Video(v *store.Video) ([]byte, error) {
	out := e.conv.video(v, time.Now())
	out.PlaybackUrl, out.PosterUrl = "", ""
	return marshalJSON(out)
}

// Activity is flock.v1.Activity, as ListActivity answers.
func (e exportEncoder) Activity(a *store.Activity) ([]byte, error) {
	return marshalJSON(e.conv.activity(a))
}

// exportLike is a like: the post and when.
type exportLike struct {
	PostID    string          `json:"postId"`
	CreatedAt json.RawMessage `json:"createdAt"`
}

func (e exportEncoder) Like(l *store.Like) ([]byte, error) {
	at, err := jsonTime(l.CreatedAt)
	if err != nil {
		return nil, err
	}
	return json.Marshal(exportLike{PostID: l.PostID, CreatedAt: at})
}

// exportRelation is a follow or a block: the other user's public summary
// and when (no other field of another user, security.md property 26).
type exportRelation struct {
	User struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		FullName string `json:"fullName"`
	} `json:"user"`
	CreatedAt json.RawMessage `json:"createdAt"`
}

func (e exportEncoder) Relation(r *store.Relation) ([]byte, error) {
	at, err := jsonTime(r.At)
	if err != nil {
		return nil, err
	}
	var out exportRelation
	out.User.ID, out.User.Username, out.User.FullName, out.CreatedAt = r.UserID, r.Username, r.FullName, at
	return json.Marshal(out)
}

// exportMembership is a membership, invitation or request: flock.v1.Group
// as its member sees it (myRole, myMembershipState) and when it began.
type exportMembership struct {
	Group     json.RawMessage `json:"group"`
	CreatedAt json.RawMessage `json:"createdAt"`
}

func (e exportEncoder) Membership(m *store.Membership) ([]byte, error) {
	g, err := marshalJSON(e.conv.group(&group.View{Group: m.Group, Mine: m.Member}))
	if err != nil {
		return nil, err
	}
	at, err := jsonTime(m.Member.CreatedAt)
	if err != nil {
		return nil, err
	}
	return json.Marshal(exportMembership{Group: g, CreatedAt: at})
}

// jsonTime renders t as proto JSON renders a timestamp, so that the plain
// records' times read like the messages' ones.
func jsonTime(t time.Time) (json.RawMessage, error) {
	return protojson.Marshal(timestamppb.New(t))
}
