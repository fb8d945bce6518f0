// Package export writes everything an account holds as one zip archive,
// streamed as it is made: JSON files for the profile, posts, comments,
// likes, follows both ways, blocks, groups, the activity log and videos,
// then the account's media (the profile picture and every video's files),
// then manifest.json. docs/accounts.md ("Exporting your data") documents
// the format; Version names it.
//
// Memory stays constant whatever the account's size: rows are read a page
// at a time (a keyset on an index, store.Export*), each record is encoded
// and written before the next is read, and media is copied through one
// small buffer. What grows is bounded by the number of files in the
// archive, not by their contents: the zip's central directory and the list
// of media to copy, a few hundred bytes per video.
//
// The JSON files are read in one read-only snapshot (store.ReadSnapshot),
// so they agree with each other: a post and its count of comments, a
// video in videos.json and the post that carries it. The media is copied
// after the snapshot ends, so that a slow download does not hold a
// database snapshot open: a file removed meanwhile (a video deleted during
// the export) is left out of the archive and of the manifest.
package export

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/uptrace/bun"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/video"
)

// Version is the version of the archive's format, in manifest.json. It
// changes when a file or field is removed or changes meaning; added files
// and fields keep it.
const Version = 1

// DefaultMaxRunning is how many exports an instance runs at once unless
// told otherwise: each holds a database connection while it reads.
const DefaultMaxRunning = 2

// pageSize is how many rows one read brings: a page of the longest posts
// (5,000 characters) is about 2 MB.
const pageSize = 100

// Files of the archive, in the order they are written.
const (
	ProfileFile     = "profile.json"
	PostsFile       = "posts.json"
	CommentsFile    = "comments.json"
	LikesFile       = "likes.json"
	FollowingFile   = "following.json"
	FollowersFile   = "followers.json"
	BlocksFile      = "blocks.json"
	GroupsFile      = "groups.json"
	ActivityFile    = "activity.json"
	VideosFile      = "videos.json"
	ManifestFile    = "manifest.json"
	MediaDir        = "media/"
	jsonContentType = "application/json"
)

// MediaPath is where the stored file with this key (an avatar's, or a
// video's, see internal/video) is in the archive: media/<key>, the path
// its URL has after /media/.
func MediaPath(key string) string { return MediaDir + key }

// Encoder renders each record as one JSON value. The transport supplies it
// (server/export.go), so that the records have the shapes its API answers
// with and clients can reuse their types.
type Encoder interface {
	// Profile renders the account itself, with its private fields.
	Profile(u *store.User) ([]byte, error)
	// Post renders one of the account's posts with its video, if any.
	Post(p *store.Post, v *store.Video) ([]byte, error)
	Comment(c *store.Comment) ([]byte, error)
	Like(l *store.Like) ([]byte, error)
	// Relation renders a follow (either way) or a block: the other user as
	// a summary, and when.
	Relation(r *store.Relation) ([]byte, error)
	Membership(m *store.Membership) ([]byte, error)
	Activity(a *store.Activity) ([]byte, error)
	Video(v *store.Video) ([]byte, error)
}

// Manifest is manifest.json, the last file of the archive: an archive
// without it is incomplete.
type Manifest struct {
	Version    int          `json:"version"`
	ExportedAt time.Time    `json:"exportedAt"`
	User       ManifestUser `json:"user"`
	// Files lists every other file of the archive in the order written.
	Files []File `json:"files"`
}

// ManifestUser names the exported account.
type ManifestUser struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

// File is one file of the archive: a JSON file with its count of records,
// or a media file with its size and type.
type File struct {
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	// Records is set for JSON files: 1 for profile.json, the length of the
	// array for the others.
	Records *int64 `json:"records,omitempty"`
	// Bytes is set for media files.
	Bytes *int64 `json:"bytes,omitempty"`
}

// Service makes exports.
type Service struct {
	db     *store.DB
	bucket *blob.Bucket
	log    *slog.Logger
	// slots bounds the exports running at once.
	slots chan struct{}
}

// NewService returns a Service that runs at most maxRunning exports at
// once (DefaultMaxRunning when maxRunning <= 0).
func NewService(db *store.DB, bucket *blob.Bucket, maxRunning int, log *slog.Logger) *Service {
	if maxRunning <= 0 {
		maxRunning = DefaultMaxRunning
	}
	return &Service{db: db, bucket: bucket, log: log, slots: make(chan struct{}, maxRunning)}
}

// Export writes the archive of userID to the writer that open returns.
// open is called once the export is sure to start (a slot is free, the
// account exists) with the account, so that the caller can send headers
// first. An error before open is called is a clean refusal: EUNAVAILABLE
// when this instance already runs as many exports as it may, ENOTFOUND
// when the account is gone. An error after it means the archive written so
// far is cut short and must not be taken for a whole one: the caller
// breaks the connection. Export does not close or flush the writer.
func (s *Service) Export(ctx context.Context, userID string, enc Encoder, open func(u *store.User) io.Writer) error {
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return flock.Errorf(flock.EUNAVAILABLE, "too many exports are running on this server; try again in a minute")
	}
	var (
		a     *archive
		media []string // keys of the media files to copy after the snapshot
	)
	err := s.db.ReadSnapshot(ctx, func(ctx context.Context, tx bun.Tx) error {
		u, err := s.db.GetUser(ctx, tx, userID)
		if store.IsNotFound(err) {
			return flock.Errorf(flock.ENOTFOUND, "the account %q no longer exists", userID)
		} else if err != nil {
			return err
		}
		a = newArchive(open(u), s.db.Now().UTC(), u)
		if u.AvatarKey != "" {
			media = append(media, u.AvatarKey)
		}
		ready := func(v *store.Video) {
			if v.Status == store.VideoReady {
				media = append(media, video.PlaybackKey(v.ID), video.PosterKey(v.ID))
			}
		}
		return s.writeJSON(ctx, tx, a, u, enc, ready)
	})
	if err != nil {
		return err
	}
	for _, key := range media {
		if err := a.copyMedia(ctx, s.bucket, key); err != nil {
			return err
		}
	}
	return a.close()
}

// writeJSON writes every JSON file of the archive from tx; it calls ready
// with each video, to collect the media to copy.
func (s *Service) writeJSON(ctx context.Context, tx bun.Tx, a *archive, u *store.User, enc Encoder, ready func(*store.Video)) error {
	db, first := s.db, store.ExportPage{UserID: u.ID, Limit: pageSize}
	byID := func(id string) (string, time.Time) { return id, time.Time{} }

	if err := a.jsonFile(ProfileFile, func(emit func([]byte, error) error) error { return emit(enc.Profile(u)) }); err != nil {
		return err
	}
	type postRow struct {
		post  *store.Post
		video *store.Video
	}
	err := a.jsonFile(PostsFile, func(emit func([]byte, error) error) error {
		return eachPage(first, func(pg store.ExportPage) ([]postRow, error) {
			posts, err := db.ExportPosts(ctx, tx, pg)
			if err != nil {
				return nil, err
			}
			var ids []string
			for _, p := range posts {
				if p.VideoID != nil {
					ids = append(ids, *p.VideoID)
				}
			}
			videos, err := db.VideosByID(ctx, tx, ids)
			if err != nil {
				return nil, err
			}
			rows := make([]postRow, len(posts))
			for i, p := range posts {
				rows[i].post = p
				if p.VideoID != nil {
					rows[i].video = videos[*p.VideoID]
				}
			}
			return rows, nil
		}, func(r postRow) (string, time.Time) { return r.post.ID, time.Time{} },
			func(r postRow) error { return emit(enc.Post(r.post, r.video)) })
	})
	if err != nil {
		return err
	}
	err = a.jsonFile(CommentsFile, func(emit func([]byte, error) error) error {
		return eachPage(first, func(pg store.ExportPage) ([]*store.Comment, error) { return db.ExportComments(ctx, tx, pg) },
			func(c *store.Comment) (string, time.Time) { return byID(c.ID) },
			func(c *store.Comment) error { return emit(enc.Comment(c)) })
	})
	if err != nil {
		return err
	}
	err = a.jsonFile(LikesFile, func(emit func([]byte, error) error) error {
		return eachPage(first, func(pg store.ExportPage) ([]*store.Like, error) { return db.ExportLikes(ctx, tx, pg) },
			func(l *store.Like) (string, time.Time) { return byID(l.PostID) },
			func(l *store.Like) error { return emit(enc.Like(l)) })
	})
	if err != nil {
		return err
	}
	for _, rel := range []struct{ file, list string }{
		{FollowingFile, store.RelFollowing}, {FollowersFile, store.RelFollowers}, {BlocksFile, store.RelBlocks},
	} {
		err = a.jsonFile(rel.file, func(emit func([]byte, error) error) error {
			return eachPage(first, func(pg store.ExportPage) ([]store.Relation, error) { return db.ExportRelations(ctx, tx, rel.list, pg) },
				func(r store.Relation) (string, time.Time) { return r.UserID, r.At },
				func(r store.Relation) error { return emit(enc.Relation(&r)) })
		})
		if err != nil {
			return err
		}
	}
	err = a.jsonFile(GroupsFile, func(emit func([]byte, error) error) error {
		for _, state := range []string{store.MemberActive, store.MemberInvited, store.MemberRequested} {
			err := eachPage(first, func(pg store.ExportPage) ([]store.Membership, error) { return db.ExportMemberships(ctx, tx, state, pg) },
				func(m store.Membership) (string, time.Time) { return m.Group.ID, m.Member.CreatedAt },
				func(m store.Membership) error { return emit(enc.Membership(&m)) })
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = a.jsonFile(ActivityFile, func(emit func([]byte, error) error) error {
		return eachPage(first, func(pg store.ExportPage) ([]*store.Activity, error) { return db.ExportActivities(ctx, tx, pg) },
			func(x *store.Activity) (string, time.Time) { return byID(x.ID) },
			func(x *store.Activity) error { return emit(enc.Activity(x)) })
	})
	if err != nil {
		return err
	}
	return a.jsonFile(VideosFile, func(emit func([]byte, error) error) error {
		return eachPage(first, func(pg store.ExportPage) ([]*store.Video, error) { return db.ExportVideos(ctx, tx, pg) },
			func(v *store.Video) (string, time.Time) { return byID(v.ID) },
			func(v *store.Video) error { ready(v); return emit(enc.Video(v)) })
	})
}

// eachPage reads the pages of a list, from pg on, until one comes back
// short, and calls emit on each row in order; key gives the keyset
// position of a row.
func eachPage[T any](pg store.ExportPage, read func(store.ExportPage) ([]T, error), key func(T) (string, time.Time), emit func(T) error) error {
	for {
		rows, err := read(pg)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := emit(r); err != nil {
				return err
			}
		}
		if int64(len(rows)) < pg.Limit {
			return nil
		}
		pg.AfterID, pg.AfterAt = key(rows[len(rows)-1])
	}
}

// archive writes the zip and keeps the manifest's list of files.
type archive struct {
	zw       *zip.Writer
	manifest Manifest
	// buf is the one buffer media is copied through.
	buf []byte
}

func newArchive(w io.Writer, at time.Time, u *store.User) *archive {
	return &archive{
		zw:       zip.NewWriter(w),
		manifest: Manifest{Version: Version, ExportedAt: at, User: ManifestUser{ID: u.ID, Username: u.Username}},
		buf:      make([]byte, 32<<10),
	}
}

// jsonFile writes a compressed JSON file. profile.json is one object; the
// other files are arrays, one record per line, written as fill emits them.
func (a *archive) jsonFile(name string, fill func(emit func([]byte, error) error) error) error {
	w, err := a.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: a.manifest.ExportedAt})
	if err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	array := name != ProfileFile
	var n int64
	emit := func(rec []byte, err error) error {
		if err != nil {
			return fmt.Errorf("export %s: encode: %w", name, err)
		}
		sep := "\n"
		switch {
		case !array:
			sep = ""
		case n > 0:
			sep = ",\n"
		}
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		if _, err := w.Write(rec); err != nil {
			return err
		}
		n++
		return nil
	}
	if array {
		if _, err := io.WriteString(w, "["); err != nil {
			return err
		}
	}
	if err := fill(emit); err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	end := "\n"
	if array {
		end = "\n]\n"
	}
	if _, err := io.WriteString(w, end); err != nil {
		return err
	}
	a.manifest.Files = append(a.manifest.Files, File{Name: name, ContentType: jsonContentType, Records: &n})
	return nil
}

// copyMedia copies the stored file at key into the archive, uncompressed
// (pictures and videos are compressed already). A file that is gone is
// left out.
func (a *archive) copyMedia(ctx context.Context, bucket *blob.Bucket, key string) error {
	rd, err := bucket.NewReader(ctx, key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil
	} else if err != nil {
		return fmt.Errorf("export %s: %w", key, err)
	}
	defer rd.Close()
	w, err := a.zw.CreateHeader(&zip.FileHeader{Name: MediaPath(key), Method: zip.Store, Modified: rd.ModTime()})
	if err != nil {
		return fmt.Errorf("export %s: %w", key, err)
	}
	// Through a.buf: blob.Reader's own WriteTo would take 1 MiB per file.
	n, err := io.CopyBuffer(w, struct{ io.Reader }{rd}, a.buf)
	if err != nil {
		return fmt.Errorf("export %s: %w", key, err)
	}
	a.manifest.Files = append(a.manifest.Files, File{Name: MediaPath(key), ContentType: rd.ContentType(), Bytes: &n})
	return nil
}

// close writes manifest.json and the zip's central directory.
func (a *archive) close() error {
	w, err := a.zw.CreateHeader(&zip.FileHeader{Name: ManifestFile, Method: zip.Deflate, Modified: a.manifest.ExportedAt})
	if err != nil {
		return fmt.Errorf("export manifest: %w", err)
	}
	b, err := json.MarshalIndent(a.manifest, "", "  ")
	if err != nil {
		return fmt.Errorf("export manifest: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("export manifest: %w", err)
	}
	if err := a.zw.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}
