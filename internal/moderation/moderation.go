// Package moderation holds the rules of reports: users report posts they
// can see, and staff list the reports and resolve them by dismissing them,
// removing the post, or suspending its author.
//
// Everything but ReportPost is for staff only (security.md property 3):
// anyone else gets EFORBIDDEN, whatever they ask for. Staff see reported
// posts whoever they were shared with, since judging them is the point.
//
// Suspension (property 5) is one transaction that marks the author
// suspended and revokes every session of theirs; after commit it announces
// the end of those sessions so that open streams close at once. The rest
// follows from rules that already hold everywhere: a suspended account
// cannot log in, its tokens stop working, and its posts, comments, profile
// and notifications drop out of every list and search.
package moderation

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/page"
	"github.com/flock-social/flock/internal/session"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/video"
)

// MaxDetailsLen bounds a report's details, in characters.
const MaxDetailsLen = 1000

var reasons = []string{
	store.ReasonSpam, store.ReasonHarassment, store.ReasonHate, store.ReasonViolence,
	store.ReasonNudity, store.ReasonMisinformation, store.ReasonOther,
}

var actions = []string{store.ActionDismiss, store.ActionRemovePost, store.ActionSuspendAuthor}

// Service carries out reports and their resolution.
type Service struct {
	db     *store.DB
	events *notify.Service
	videos *video.Service // removes the files of a removed post's video; may be nil
	// sessions drops a suspended user's cached sessions on every instance.
	sessions *session.Cache
}

// NewService returns a Service that records reports with events and
// announces suspensions on it and on sessions (which may be nil).
func NewService(db *store.DB, events *notify.Service, videos *video.Service, sessions *session.Cache) *Service {
	return &Service{db: db, events: events, videos: videos, sessions: sessions}
}

// View is a report as one viewer sees it.
type View struct {
	*store.Report
	// Reporter is the user who reported the post.
	Reporter *store.User
	// Post is the reported post as it is now; nil once it was removed.
	Post *store.Post
	// Author is the post's author, with the viewer's relationship to them
	// in AuthorRel; nil when Post is.
	Author    *store.User
	AuthorRel store.Relationship
	// LikedByMe is whether the viewer likes the post.
	LikedByMe bool
}

// ReportInput is a new report.
type ReportInput struct {
	// Reason is one of the store.Reason* values.
	Reason string
	// Details is optional free text, required for store.ReasonOther.
	Details string
}

func checkReport(in ReportInput) (ReportInput, error) {
	if !slices.Contains(reasons, in.Reason) {
		return in, flock.FieldErrorf("reason", "reason must be one of %s", strings.Join(reasons, ", "))
	}
	in.Details = strings.TrimSpace(in.Details)
	if !utf8.ValidString(in.Details) || strings.ContainsRune(in.Details, 0) {
		return in, flock.FieldErrorf("details", "details must be valid UTF-8 text")
	}
	if n := utf8.RuneCountInString(in.Details); n > MaxDetailsLen {
		return in, flock.FieldErrorf("details", "details must be at most %d characters, got %d", MaxDetailsLen, n)
	}
	if in.Reason == store.ReasonOther && in.Details == "" {
		return in, flock.FieldErrorf("details", "details are required when the reason is other: say what is wrong with the post")
	}
	return in, nil
}

// ReportPost reports a post the caller may see to staff. A user has at
// most one open report per post: reporting it again returns that report
// unchanged (its first reason and details stand). Returns EINVALID for an
// unknown reason, details that are too long, reason other without
// details, or the caller's own post, and ENOTFOUND for a post the caller
// may not see.
func (s *Service) ReportPost(ctx context.Context, p *account.Principal, postID string, in ReportInput) (*View, error) {
	in, err := checkReport(in)
	if err != nil {
		return nil, err
	}
	var (
		ev     notify.Events
		report *store.Report
	)
	err = s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		visible, err := s.db.PostVisible(ctx, tx, p.UserID, postID)
		if err != nil {
			return err
		}
		if !visible {
			return flock.Errorf(flock.ENOTFOUND, "post %q not found", postID)
		}
		post, err := s.db.GetPost(ctx, tx, postID)
		if err != nil {
			return err
		}
		if post.AuthorID == p.UserID {
			return flock.FieldErrorf("post_id", "you cannot report your own post")
		}
		report, err = s.db.GetOpenReport(ctx, tx, p.UserID, postID)
		if err == nil || !store.IsNotFound(err) {
			return err
		}
		report = &store.Report{PostID: postID, PostAuthorID: post.AuthorID, ReporterID: p.UserID, Reason: in.Reason, Details: in.Details}
		created, err := s.db.CreateReport(ctx, tx, report)
		if err != nil {
			return err
		}
		if !created {
			// A concurrent request of the same user got there first.
			report, err = s.db.GetOpenReport(ctx, tx, p.UserID, postID)
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.PostReported, PostID: &postID})
	})
	if err != nil {
		return nil, fmt.Errorf("report post: %w", err)
	}
	s.events.Publish(ctx, &ev)
	views, err := s.views(ctx, p.UserID, []*store.Report{report})
	if err != nil {
		return nil, fmt.Errorf("report post: %w", err)
	}
	return views[0], nil
}

func requireStaff(p *account.Principal, verb string) error {
	if !p.IsStaff() {
		return flock.Errorf(flock.EFORBIDDEN, "only staff may %s", verb)
	}
	return nil
}

// Page is a page of reports.
type Page struct {
	Reports       []*View
	NextPageToken string
}

// rank is a status's place in the list order (see store.ReportStatuses).
func rank(status string) int { return slices.Index(store.ReportStatuses, status) }

// ListReports lists reports for staff: open ones first, then resolved
// ones, each newest first; only those in status when it is set. The page
// token carries the (status rank, id) of the last report of the page.
// Returns EFORBIDDEN for anyone but staff and EINVALID for an unknown
// status or a page token of another list.
func (s *Service) ListReports(ctx context.Context, p *account.Principal, status string, size int32, token string) (*Page, error) {
	if err := requireStaff(p, "list reports"); err != nil {
		return nil, err
	}
	kind := "reports"
	if status != "" {
		if rank(status) < 0 {
			return nil, flock.FieldErrorf("status", "status must be open or resolved, or unset for every report")
		}
		kind += ":" + status
	}
	cur, ok, err := page.Decode(kind, token)
	if err != nil {
		return nil, err
	}
	f := store.ReportFilter{Status: status, AfterRank: int(cur.Score), AfterID: cur.ID}
	if ok && (cur.ID == "" || float64(f.AfterRank) != cur.Score || f.AfterRank < 0 || f.AfterRank >= len(store.ReportStatuses) ||
		(status != "" && store.ReportStatuses[f.AfterRank] != status)) {
		return nil, flock.FieldErrorf("page_token", "page_token is not valid for this list; pass the nextPageToken of the previous page unchanged, or leave it empty for the first page")
	}
	n := page.Size(size)
	f.Limit = n + 1
	rows, err := s.db.ListReports(ctx, s.db, f)
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	rows, next := page.Next(rows, n, func(r *store.Report) page.Cursor {
		return page.Cursor{Kind: kind, ID: r.ID, Score: float64(rank(r.Status))}
	})
	views, err := s.views(ctx, p.UserID, rows)
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	return &Page{Reports: views, NextPageToken: next}, nil
}

// ResolveReport resolves an open report, and every other open report of
// the same post with it, by one action (a store.Action* value):
//   - dismiss changes nothing else;
//   - remove_post deletes the post with its likes, comments, hashtags and
//     video (nothing to do when its author already deleted it);
//   - suspend_author suspends the post's author and revokes all their
//     sessions, then closes their open streams.
//
// Returns EFORBIDDEN for anyone but staff, EINVALID for an unknown action
// or a staff member suspending themselves, ENOTFOUND for an unknown
// report, and EPRECONDITION for a report that is already resolved.
func (s *Service) ResolveReport(ctx context.Context, p *account.Principal, reportID, action string) (*View, error) {
	if err := requireStaff(p, "resolve reports"); err != nil {
		return nil, err
	}
	if !slices.Contains(actions, action) {
		return nil, flock.FieldErrorf("action", "action must be one of %s", strings.Join(actions, ", "))
	}
	var (
		report    *store.Report
		announces []string
		suspended string
		videoID   *string
	)
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		announces, suspended, videoID = nil, "", nil // InTx may run this again after a deadlock
		var err error
		report, err = s.db.GetReport(ctx, tx, reportID)
		if store.IsNotFound(err) {
			return flock.Errorf(flock.ENOTFOUND, "report %q not found", reportID)
		} else if err != nil {
			return err
		}
		if report.Status != store.ReportOpen {
			return alreadyResolved(reportID)
		}
		if action == store.ActionSuspendAuthor && report.PostAuthorID == p.UserID {
			return flock.FieldErrorf("action", "you cannot suspend yourself")
		}
		resolved, err := s.db.ResolveOpenReports(ctx, tx, store.ReportResolution{PostID: report.PostID, Action: action, ResolvedByID: p.UserID})
		if err != nil {
			return err
		}
		if !slices.Contains(resolved, report.ID) {
			return alreadyResolved(reportID) // by someone else, just now
		}
		switch action {
		case store.ActionRemovePost:
			post, err := s.db.GetPost(ctx, tx, report.PostID)
			if store.IsNotFound(err) {
				return nil
			} else if err != nil {
				return err
			}
			videoID = post.VideoID
			return s.db.DeletePost(ctx, tx, post)
		case store.ActionSuspendAuthor:
			if err := s.db.SuspendUser(ctx, tx, report.PostAuthorID); err != nil {
				return err
			}
			sessions, err := s.db.RevokeUserSessionsReturningIDs(ctx, tx, report.PostAuthorID, "suspended")
			if err != nil {
				return err
			}
			suspended = report.PostAuthorID
			announces = append(announces, notify.UserChannel(report.PostAuthorID))
			for _, id := range sessions {
				announces = append(announces, notify.SessionChannel(id))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("resolve report: %w", err)
	}
	if suspended != "" {
		// Every instance refuses the user's access tokens before this answers.
		s.sessions.UserChanged(ctx, suspended)
	}
	for _, c := range announces {
		s.events.Announce(ctx, c)
	}
	if videoID != nil && s.videos != nil {
		s.videos.Removed(ctx, *videoID)
	}
	if report, err = s.db.GetReport(ctx, s.db, reportID); err != nil {
		return nil, fmt.Errorf("resolve report: %w", err)
	}
	views, err := s.views(ctx, p.UserID, []*store.Report{report})
	if err != nil {
		return nil, fmt.Errorf("resolve report: %w", err)
	}
	return views[0], nil
}

func alreadyResolved(id string) error {
	return flock.Errorf(flock.EPRECONDITION, "report %q is already resolved", id)
}

// views adds reporters, posts as they are now, their authors with the
// viewer's relationship, and likedByMe, in a fixed number of queries
// (posts and hashtags, users, relationships, likes) whatever the number of
// reports.
func (s *Service) views(ctx context.Context, viewerID string, reports []*store.Report) ([]*View, error) {
	var postIDs, userIDs []string
	for _, r := range reports {
		if !slices.Contains(postIDs, r.PostID) {
			postIDs = append(postIDs, r.PostID)
		}
		for _, id := range []string{r.ReporterID, r.PostAuthorID} {
			if !slices.Contains(userIDs, id) {
				userIDs = append(userIDs, id)
			}
		}
	}
	posts, err := s.db.GetReportedPosts(ctx, s.db, postIDs)
	if err != nil {
		return nil, err
	}
	users, err := s.db.GetUsers(ctx, s.db, userIDs)
	if err != nil {
		return nil, err
	}
	var livePosts, authorIDs []string
	for id, post := range posts {
		livePosts = append(livePosts, id)
		authorIDs = append(authorIDs, post.AuthorID)
	}
	rels, err := s.db.Relationships(ctx, s.db, viewerID, authorIDs)
	if err != nil {
		return nil, err
	}
	liked, err := s.db.LikedPosts(ctx, s.db, viewerID, livePosts)
	if err != nil {
		return nil, err
	}
	out := make([]*View, len(reports))
	for i, r := range reports {
		v := &View{Report: r, Reporter: users[r.ReporterID]}
		if post := posts[r.PostID]; post != nil {
			v.Post, v.Author, v.AuthorRel, v.LikedByMe = post, users[post.AuthorID], rels[post.AuthorID], liked[post.ID]
		}
		out[i] = v
	}
	return out, nil
}
