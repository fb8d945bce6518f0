package server_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// Short names for the enums the tests use.
const (
	spam          = flockv1.ReportReason_REPORT_REASON_SPAM
	hate          = flockv1.ReportReason_REPORT_REASON_HATE
	otherReason   = flockv1.ReportReason_REPORT_REASON_OTHER
	statusOpen    = flockv1.ReportStatus_REPORT_STATUS_OPEN
	statusDone    = flockv1.ReportStatus_REPORT_STATUS_RESOLVED
	dismiss       = flockv1.ReportAction_REPORT_ACTION_DISMISS
	removePost    = flockv1.ReportAction_REPORT_ACTION_REMOVE_POST
	suspendAuthor = flockv1.ReportAction_REPORT_ACTION_SUSPEND_AUTHOR
)

func (a api) report(tok, postID string, reason flockv1.ReportReason, details string) (*flockv1.Report, error) {
	res, err := call[flockv1.ReportPostResponse](a, flockv1connect.PostServiceReportPostProcedure, tok,
		&flockv1.ReportPostRequest{PostId: postID, Reason: reason, Details: details})
	return res.GetReport(), err
}

func (a api) mustReport(tok, postID string, reason flockv1.ReportReason, details string) *flockv1.Report {
	a.t.Helper()
	r, err := a.report(tok, postID, reason, details)
	if err != nil {
		a.t.Fatalf("%s report %s: %v", a.tr, postID, err)
	}
	return r
}

func (a api) resolve(tok, reportID string, action flockv1.ReportAction) (*flockv1.Report, error) {
	res, err := call[flockv1.ResolveReportResponse](a, flockv1connect.ModerationServiceResolveReportProcedure, tok,
		&flockv1.ResolveReportRequest{ReportId: reportID, Action: action})
	return res.GetReport(), err
}

func (a api) mustResolve(tok, reportID string, action flockv1.ReportAction) *flockv1.Report {
	a.t.Helper()
	r, err := a.resolve(tok, reportID, action)
	if err != nil {
		a.t.Fatalf("%s resolve %s: %v", a.tr, reportID, err)
	}
	return r
}

// reports pages through ListReports, size reports at a time, and returns
// every report in list order.
func (a api) reports(tok string, status flockv1.ReportStatus, size int32) []*flockv1.Report {
	a.t.Helper()
	var out []*flockv1.Report
	pageToken := ""
	for {
		res := must[flockv1.ListReportsResponse](a, flockv1connect.ModerationServiceListReportsProcedure, tok,
			&flockv1.ListReportsRequest{Status: status, PageSize: size, PageToken: pageToken})
		out = append(out, res.GetReports()...)
		if pageToken = res.GetNextPageToken(); pageToken == "" {
			return out
		}
	}
}

// only keeps the reports whose IDs are in want, in list order: subtests
// share a server, and ListReports shows every report on it.
func only(rs []*flockv1.Report, want ...string) []*flockv1.Report {
	var out []*flockv1.Report
	for _, r := range rs {
		if slices.Contains(want, r.GetId()) {
			out = append(out, r)
		}
	}
	return out
}

func byID(rs []*flockv1.Report, id string) *flockv1.Report {
	for _, r := range rs {
		if r.GetId() == id {
			return r
		}
	}
	return nil
}

// mustStaff promotes an account to staff.
func mustStaff(t *testing.T, s *tu.Server, acc *tu.Account) {
	t.Helper()
	if _, err := s.App.DB().SetUserRole(context.Background(), s.App.DB(), acc.Username, store.RoleStaff); err != nil {
		t.Fatalf("promote %s: %v", acc.Username, err)
	}
}

// A report, the staff list, and each action with its effect, on every
// transport and engine.
func TestReports_ReportListAndResolveEachAction(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		author, reporter, mod := a.s.MustAccount(t, name(a, "rauthor")), a.s.MustAccount(t, name(a, "reporter")), a.s.MustAccount(t, name(a, "mod"))
		mustStaff(t, a.s, mod)
		kept, removed, last := a.post(author.AccessToken, "kept #reported"), a.post(author.AccessToken, "removed"), a.post(author.AccessToken, "last")

		r1 := a.mustReport(reporter.AccessToken, kept.GetId(), spam, "  buy now  ")
		if r1.GetId() == "" || r1.GetPostId() != kept.GetId() || r1.GetReason() != spam || r1.GetDetails() != "buy now" ||
			r1.GetStatus() != statusOpen || r1.GetAction() != flockv1.ReportAction_REPORT_ACTION_UNSPECIFIED ||
			r1.GetCreatedAt() == nil || r1.GetResolvedAt() != nil || r1.GetResolvedById() != "" {
			t.Fatalf("new report = %v", r1)
		}
		if r1.GetReporter().GetId() != reporter.ID || r1.GetReporter().GetEmail() != "" {
			t.Errorf("reporter = %v, want the reporter's public profile", r1.GetReporter())
		}
		if p := r1.GetPost(); p.GetId() != kept.GetId() || p.GetContent() != "kept #reported" || p.GetAuthor().GetId() != author.ID || p.GetAuthor().GetEmail() != "" {
			t.Errorf("report's post = %v", p)
		}
		r2 := a.mustReport(reporter.AccessToken, removed.GetId(), hate, "")
		r3 := a.mustReport(reporter.AccessToken, last.GetId(), otherReason, "it is a scam")

		// Reporting is logged once per report in the reporter's activity.
		acts := must[flockv1.ListActivityResponse](a, flockv1connect.ActivityServiceListActivityProcedure, reporter.AccessToken, &flockv1.ListActivityRequest{PageSize: 100}).GetActivities()
		if got := types(acts); !slices.Equal(got, []string{"POST_REPORTED", "POST_REPORTED", "POST_REPORTED"}) || acts[0].GetPostId() != last.GetId() {
			t.Errorf("reporter's activity = %v", acts)
		}

		// Staff see them open, newest first, with the reason and the post.
		open := only(a.reports(mod.AccessToken, statusOpen, 100), r1.GetId(), r2.GetId(), r3.GetId())
		if !slices.Equal(ids(open), []string{r3.GetId(), r2.GetId(), r1.GetId()}) {
			t.Fatalf("open reports = %v, want [r3 r2 r1]", ids(open))
		}
		if open[0].GetReason() != otherReason || open[0].GetDetails() != "it is a scam" || open[0].GetPost().GetId() != last.GetId() || open[0].GetReporter().GetUsername() != reporter.Username {
			t.Errorf("listed report = %v", open[0])
		}

		t.Run("dismiss keeps the post", func(t *testing.T) {
			got := a.mustResolve(mod.AccessToken, r1.GetId(), dismiss)
			if got.GetStatus() != statusDone || got.GetAction() != dismiss || got.GetResolvedById() != mod.ID || got.GetResolvedAt() == nil || got.GetPost().GetId() != kept.GetId() {
				t.Fatalf("dismissed = %v", got)
			}
			if _, err := call[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, reporter.AccessToken, &flockv1.GetPostRequest{PostId: kept.GetId()}); err != nil {
				t.Errorf("dismissed post: %v", err)
			}
			_, err := a.resolve(mod.AccessToken, r1.GetId(), removePost)
			wantCode(t, err, connect.CodeFailedPrecondition)
		})
		t.Run("remove deletes the post and keeps the report", func(t *testing.T) {
			must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, reporter.AccessToken, &flockv1.CreateCommentRequest{PostId: removed.GetId(), Content: "gone too"})
			got := a.mustResolve(mod.AccessToken, r2.GetId(), removePost)
			if got.GetStatus() != statusDone || got.GetAction() != removePost || got.GetPost() != nil || got.GetPostId() != removed.GetId() {
				t.Fatalf("removed = %v", got)
			}
			for _, tok := range []string{reporter.AccessToken, author.AccessToken} {
				_, err := call[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, tok, &flockv1.GetPostRequest{PostId: removed.GetId()})
				wantCode(t, err, connect.CodeNotFound)
			}
			if u, _ := a.user(reporter.AccessToken, author.ID); u.GetPostsCount() != 2 {
				t.Errorf("author's posts count = %d, want 2", u.GetPostsCount())
			}
			if listed := byID(a.reports(mod.AccessToken, statusDone, 100), r2.GetId()); listed == nil || listed.GetPost() != nil || listed.GetAction() != removePost {
				t.Errorf("listed removed report = %v", listed)
			}
		})
		t.Run("suspend hides the author", func(t *testing.T) {
			got := a.mustResolve(mod.AccessToken, r3.GetId(), suspendAuthor)
			if got.GetStatus() != statusDone || got.GetAction() != suspendAuthor || got.GetPost().GetId() != last.GetId() {
				t.Fatalf("suspended = %v", got)
			}
			_, err := a.user(reporter.AccessToken, author.ID)
			wantCode(t, err, connect.CodeNotFound)
		})

		// Open ones first, then resolved ones, each newest first.
		all := only(a.reports(mod.AccessToken, flockv1.ReportStatus_REPORT_STATUS_UNSPECIFIED, 100), r1.GetId(), r2.GetId(), r3.GetId())
		if !slices.Equal(ids(all), []string{r3.GetId(), r2.GetId(), r1.GetId()}) {
			t.Errorf("all reports = %v", ids(all))
		}
		_, err := a.resolve(mod.AccessToken, "01NOSUCHREPORT00000000000", dismiss)
		wantCode(t, err, connect.CodeNotFound)
		_, err = a.resolve(mod.AccessToken, r3.GetId(), flockv1.ReportAction_REPORT_ACTION_UNSPECIFIED)
		wantCode(t, err, connect.CodeInvalidArgument)
	})
}

// Reporting a post again returns the open report; once it is resolved, a
// new report opens; concurrent reports make one.
func TestReportPost_OneOpenReportPerReporterPerPost(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		author, reporter, mod := a.s.MustAccount(t, name(a, "oauthor")), a.s.MustAccount(t, name(a, "oreporter")), a.s.MustAccount(t, name(a, "omod"))
		mustStaff(t, a.s, mod)
		p := a.post(author.AccessToken, "reported twice")
		first := a.mustReport(reporter.AccessToken, p.GetId(), spam, "first")
		again := a.mustReport(reporter.AccessToken, p.GetId(), hate, "second")
		if again.GetId() != first.GetId() || again.GetReason() != spam || again.GetDetails() != "first" || again.GetStatus() != statusOpen {
			t.Fatalf("reported again = %v, want the first report %s", again, first.GetId())
		}
		acts := must[flockv1.ListActivityResponse](a, flockv1connect.ActivityServiceListActivityProcedure, reporter.AccessToken, &flockv1.ListActivityRequest{}).GetActivities()
		if len(acts) != 1 {
			t.Errorf("reporting twice logged %v", types(acts))
		}

		a.mustResolve(mod.AccessToken, first.GetId(), dismiss)
		fresh := a.mustReport(reporter.AccessToken, p.GetId(), hate, "")
		if fresh.GetId() == first.GetId() || fresh.GetStatus() != statusOpen {
			t.Fatalf("report after resolution = %v", fresh)
		}

		// Concurrent reports by one user: one report.
		p2 := a.post(author.AccessToken, "reported at once")
		var wg sync.WaitGroup
		got := make([]string, 8)
		for i := range got {
			wg.Go(func() {
				r, err := a.report(reporter.AccessToken, p2.GetId(), spam, "")
				if err != nil {
					t.Errorf("concurrent report: %v", err)
				}
				got[i] = r.GetId()
			})
		}
		wg.Wait()
		if got[0] == "" || slices.ContainsFunc(got, func(id string) bool { return id != got[0] }) {
			t.Errorf("concurrent reports = %v, want one id", got)
		}
	})
}

// Resolving one report resolves every other open report of the post, with
// the same action and staff member, and no report of another post.
func TestResolveReport_ResolvesEveryOpenReportOfThePost(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		author, mod := a.s.MustAccount(t, name(a, "mauthor")), a.s.MustAccount(t, name(a, "mmod"))
		mustStaff(t, a.s, mod)
		p, otherPost := a.post(author.AccessToken, "many reports"), a.post(author.AccessToken, "one report")
		var same []string
		for _, base := range []string{"ra", "rb", "rc"} {
			r := a.s.MustAccount(t, name(a, base))
			same = append(same, a.mustReport(r.AccessToken, p.GetId(), spam, "").GetId())
		}
		lone := a.mustReport(a.s.MustAccount(t, name(a, "rd")).AccessToken, otherPost.GetId(), spam, "")

		a.mustResolve(mod.AccessToken, same[1], dismiss)
		resolved := a.reports(mod.AccessToken, statusDone, 100)
		for _, id := range same {
			r := byID(resolved, id)
			if r == nil || r.GetAction() != dismiss || r.GetResolvedById() != mod.ID || r.GetResolvedAt() == nil {
				t.Errorf("report %s of the same post = %v, want resolved with it", id, r)
			}
			_, err := a.resolve(mod.AccessToken, id, removePost)
			wantCode(t, err, connect.CodeFailedPrecondition)
		}
		if r := byID(a.reports(mod.AccessToken, statusOpen, 100), lone.GetId()); r == nil {
			t.Errorf("the report of another post was resolved too")
		}
	})
}

// Pages of ListReports: open ones first, then resolved ones, each newest
// first, with pages that cross from one to the other; a status filter; bad
// and foreign page tokens refused.
func TestListReports_OpenFirstNewestFirstInPages(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		author, reporter, mod := s.MustAccount(t, "pauthor"), s.MustAccount(t, "preporter"), s.MustAccount(t, "pmod")
		mustStaff(t, s, mod)
		var r []string
		for range 5 {
			r = append(r, a.mustReport(reporter.AccessToken, a.post(author.AccessToken, "page").GetId(), spam, "").GetId())
		}
		a.mustResolve(mod.AccessToken, r[1], dismiss)
		a.mustResolve(mod.AccessToken, r[3], dismiss)
		all := []string{r[4], r[2], r[0], r[3], r[1]}
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				t.Parallel()
				a := api{t: t, s: s, tr: tr}
				for _, size := range []int32{1, 2, 3, 0, 1000} {
					if got := ids(a.reports(mod.AccessToken, flockv1.ReportStatus_REPORT_STATUS_UNSPECIFIED, size)); !slices.Equal(got, all) {
						t.Errorf("size %d: %v, want %v", size, got, all)
					}
				}
				if got := ids(a.reports(mod.AccessToken, statusOpen, 2)); !slices.Equal(got, all[:3]) {
					t.Errorf("open: %v", got)
				}
				if got := ids(a.reports(mod.AccessToken, statusDone, 1)); !slices.Equal(got, all[3:]) {
					t.Errorf("resolved: %v", got)
				}
				openPage := must[flockv1.ListReportsResponse](a, flockv1connect.ModerationServiceListReportsProcedure, mod.AccessToken, &flockv1.ListReportsRequest{Status: statusOpen, PageSize: 1})
				for _, req := range []*flockv1.ListReportsRequest{
					{PageToken: "garbage"},
					{PageToken: openPage.GetNextPageToken()},                     // a token of the open list
					{Status: statusDone, PageToken: openPage.GetNextPageToken()}, // in another list
				} {
					_, err := call[flockv1.ListReportsResponse](a, flockv1connect.ModerationServiceListReportsProcedure, mod.AccessToken, req)
					wantCode(t, err, connect.CodeInvalidArgument)
				}
			})
		}
	})
}

// Validation of reports: reason required and known, details bounded and
// required for "other", not your own post, and only posts you can see.
func TestReportPost_Validation(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		author, reporter, blocker := a.s.MustAccount(t, name(a, "vauthor")), a.s.MustAccount(t, name(a, "vreporter")), a.s.MustAccount(t, name(a, "vblocker"))
		public := a.post(author.AccessToken, "public")
		private := a.post(author.AccessToken, "followers only", flockv1.Visibility_VISIBILITY_FOLLOWERS)
		blockers := a.post(blocker.AccessToken, "by a blocker")
		must[flockv1.BlockResponse](a, flockv1connect.UserServiceBlockProcedure, blocker.AccessToken, &flockv1.BlockRequest{UserId: reporter.ID})

		cases := []struct {
			name    string
			tok     string
			postID  string
			reason  flockv1.ReportReason
			details string
			want    connect.Code
		}{
			{"no reason", reporter.AccessToken, public.GetId(), flockv1.ReportReason_REPORT_REASON_UNSPECIFIED, "", connect.CodeInvalidArgument},
			{"unknown reason", reporter.AccessToken, public.GetId(), flockv1.ReportReason(99), "", connect.CodeInvalidArgument},
			{"details too long", reporter.AccessToken, public.GetId(), spam, strings.Repeat("x", 1001), connect.CodeInvalidArgument},
			{"other without details", reporter.AccessToken, public.GetId(), otherReason, "", connect.CodeInvalidArgument},
			{"other with blank details", reporter.AccessToken, public.GetId(), otherReason, " \n\t ", connect.CodeInvalidArgument},
			{"own post", author.AccessToken, public.GetId(), spam, "", connect.CodeInvalidArgument},
			{"followers-only post of someone not followed", reporter.AccessToken, private.GetId(), spam, "", connect.CodeNotFound},
			{"post of someone who blocked you", reporter.AccessToken, blockers.GetId(), spam, "", connect.CodeNotFound},
			{"unknown post", reporter.AccessToken, "01NOSUCHPOST0000000000000", spam, "", connect.CodeNotFound},
			{"anonymous", "", public.GetId(), spam, "", connect.CodeUnauthenticated},
			{"1000 characters of details", reporter.AccessToken, public.GetId(), otherReason, strings.Repeat("é", 1000), ok},
		}
		for _, c := range cases {
			_, err := a.report(c.tok, c.postID, c.reason, c.details)
			if got := connect.CodeOf(err); (c.want == ok && err != nil) || (c.want != ok && got != c.want) {
				t.Errorf("%s: got %v, want %s", c.name, err, codeName(c.want))
			}
			if c.name == "other without details" && err != nil && !strings.Contains(err.Error(), "details") {
				t.Errorf("%s: message %q does not say what is missing", c.name, err)
			}
		}
	})
}

// P3: every moderation RPC answers permission_denied to members and
// unauthenticated to anonymous callers, on every transport; staff get on
// with it. A member learns nothing about reports, not even which exist.
func TestModeration_StaffOnly_P3(t *testing.T) {
	t.Parallel()
	const member = "member"
	type fixture struct {
		openReport string // a fresh open report, for the resolving calls
	}
	rpcs := []struct {
		name  string
		call  func(a api, tok string, f fixture) error
		staff connect.Code
	}{
		{"ListReports", func(a api, tok string, _ fixture) error {
			return do[flockv1.ListReportsResponse](a, flockv1connect.ModerationServiceListReportsProcedure, tok, &flockv1.ListReportsRequest{})
		}, ok},
		{"ListReports(open)", func(a api, tok string, _ fixture) error {
			return do[flockv1.ListReportsResponse](a, flockv1connect.ModerationServiceListReportsProcedure, tok, &flockv1.ListReportsRequest{Status: statusOpen, PageSize: 1})
		}, ok},
		{"ResolveReport(dismiss)", func(a api, tok string, f fixture) error {
			_, err := a.resolve(tok, f.openReport, dismiss)
			return err
		}, ok},
		{"ResolveReport(remove post)", func(a api, tok string, f fixture) error {
			_, err := a.resolve(tok, f.openReport, removePost)
			return err
		}, ok},
		{"ResolveReport(unknown report)", func(a api, tok string, _ fixture) error {
			_, err := a.resolve(tok, "01NOSUCHREPORT00000000000", dismiss)
			return err
		}, connect.CodeNotFound},
		// Last, since it suspends the author of every fixture.
		{"ResolveReport(suspend author)", func(a api, tok string, f fixture) error {
			_, err := a.resolve(tok, f.openReport, suspendAuthor)
			return err
		}, ok},
	}
	forEachTransport(t, func(t *testing.T, a api) {
		accounts := map[string]*tu.Account{
			member: a.s.MustAccount(t, name(a, "p3member")),
			staff:  a.s.MustAccount(t, name(a, "p3staff")),
		}
		mustStaff(t, a.s, accounts[staff])
		author, reporter := a.s.MustAccount(t, name(a, "p3author")), a.s.MustAccount(t, name(a, "p3reporter"))
		fresh := func() fixture {
			p := a.post(author.AccessToken, "reported")
			return fixture{openReport: a.mustReport(reporter.AccessToken, p.GetId(), spam, "").GetId()}
		}
		for _, rpc := range rpcs {
			for _, role := range []string{member, anonymous, staff} {
				want := map[string]connect.Code{member: connect.CodePermissionDenied, anonymous: connect.CodeUnauthenticated, staff: rpc.staff}[role]
				tok := ""
				if acc := accounts[role]; acc != nil {
					tok = acc.AccessToken
				}
				f := fresh()
				err := rpc.call(a, tok, f)
				if got := connect.CodeOf(err); (want == ok && err != nil) || (want != ok && got != want) {
					t.Errorf("%s as %s: got %v, want %s", rpc.name, role, err, codeName(want))
				}
				if role != staff {
					// Refused calls change nothing.
					if r := byID(a.reports(accounts[staff].AccessToken, statusOpen, 100), f.openReport); r == nil || r.GetPost() == nil {
						t.Errorf("%s as %s: the report or its post changed: %v", rpc.name, role, r)
					}
				}
			}
		}
	})
}

// P5: suspending an author through a report cuts them off everywhere at
// once: login, access and refresh tokens of every session, open streams
// (Subscribe, or the WebSocket for REST), and their content for everyone
// else (feed, GetPost, hashtag search, comments, user search, profile).
// The streams' periodic re-check is an hour away, so a stream that ends
// at all was told of the suspension.
func TestSuspension_CutsOffEverything_P5(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		bad, fan, mod := a.s.MustAccount(t, name(a, "suspended")), a.s.MustAccount(t, name(a, "sfan")), a.s.MustAccount(t, name(a, "smod"))
		mustStaff(t, a.s, mod)
		if err := a.follow(fan.AccessToken, bad.ID); err != nil {
			t.Fatal(err)
		}
		tag := "suspendme" + string(a.tr)
		reported := a.post(bad.AccessToken, "#"+tag+" reported")
		followersOnly := a.post(bad.AccessToken, "for followers", flockv1.Visibility_VISIBILITY_FOLLOWERS)
		fans := a.post(fan.AccessToken, "fan's post")
		must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, bad.AccessToken, &flockv1.CreateCommentRequest{PostId: fans.GetId(), Content: "bad comment"})
		must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, fan.AccessToken, &flockv1.CreateCommentRequest{PostId: fans.GetId(), Content: "fan comment"})
		// A second session of the suspended user.
		second := must[flockv1.LoginResponse](a, flockv1connect.UserServiceLoginProcedure, "",
			&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: bad.Username}, Password: bad.Password})

		// Before: the fan sees it all.
		if got := ids(a.hashtag(fan.AccessToken, tag)); !slices.Equal(got, []string{reported.GetId()}) {
			t.Fatalf("hashtag before = %v", got)
		}
		if got := ids(a.search(fan.AccessToken, bad.Username)); !slices.Contains(got, bad.ID) {
			t.Fatalf("search before = %v", got)
		}

		// An open stream of the suspended user's: Subscribe, or a WebSocket for REST.
		var streamEnded func()
		if a.tr == tu.REST {
			conn, _, err := wsDial(t, a.s, "/api/notifications/", second.GetAccessToken())
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.CloseNow()
			streamEnded = func() {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				_, _, err := conn.Read(ctx)
				if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
					t.Errorf("the WebSocket ended with %v, want close 1008", err)
				}
			}
		} else {
			sub := subscribe(t, a.s, a.tr, bad.AccessToken, "")
			streamEnded = func() {
				if err := sub.end(t); connect.CodeOf(err) != connect.CodeUnauthenticated {
					t.Errorf("the stream ended with %v, want unauthenticated", err)
				}
			}
		}

		r := a.mustReport(fan.AccessToken, reported.GetId(), hate, "")
		a.mustResolve(mod.AccessToken, r.GetId(), suspendAuthor)
		// The stream ends at once (streamEnded waits 10 s at most), not at
		// its next periodic check, an hour away.
		streamEnded()

		_, err := call[flockv1.LoginResponse](a, flockv1connect.UserServiceLoginProcedure, "",
			&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: bad.Username}, Password: bad.Password})
		wantCode(t, err, connect.CodePermissionDenied)
		for _, tok := range []string{bad.AccessToken, second.GetAccessToken()} {
			_, err = call[flockv1.GetMeResponse](a, flockv1connect.UserServiceGetMeProcedure, tok, &flockv1.GetMeRequest{})
			wantCode(t, err, connect.CodeUnauthenticated)
			// The refusal says why, not only "invalid or expired".
			if err != nil && !strings.Contains(err.Error(), "this account is suspended") {
				t.Errorf("GetMe with a suspended account's token: %v, want it to say the account is suspended", err)
			}
		}
		for _, tok := range []string{bad.RefreshToken, second.GetRefreshToken()} {
			_, err = call[flockv1.RefreshTokenResponse](a, flockv1connect.UserServiceRefreshTokenProcedure, "", &flockv1.RefreshTokenRequest{RefreshToken: tok})
			wantCode(t, err, connect.CodeUnauthenticated)
		}

		// Their content is gone for everyone else.
		if feed, _ := a.feed(fan.AccessToken, 100, ""); !slices.Equal(ids(feed), []string{fans.GetId()}) {
			t.Errorf("fan's feed = %v, want only the fan's own post", ids(feed))
		}
		for _, id := range []string{reported.GetId(), followersOnly.GetId()} {
			_, err = call[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, fan.AccessToken, &flockv1.GetPostRequest{PostId: id})
			wantCode(t, err, connect.CodeNotFound)
		}
		if got := a.hashtag(fan.AccessToken, tag); len(got) != 0 {
			t.Errorf("hashtag after = %v", ids(got))
		}
		comments := must[flockv1.ListCommentsResponse](a, flockv1connect.PostServiceListCommentsProcedure, fan.AccessToken, &flockv1.ListCommentsRequest{PostId: fans.GetId()}).GetComments()
		if len(comments) != 1 || comments[0].GetAuthor().GetId() != fan.ID {
			t.Errorf("comments after = %v", comments)
		}
		if got := ids(a.search(fan.AccessToken, bad.Username)); slices.Contains(got, bad.ID) {
			t.Errorf("search after = %v", got)
		}
		_, err = a.user(fan.AccessToken, bad.ID)
		wantCode(t, err, connect.CodeNotFound)
		following := must[flockv1.ListFollowingResponse](a, flockv1connect.UserServiceListFollowingProcedure, fan.AccessToken, &flockv1.ListFollowingRequest{UserId: fan.ID}).GetUsers()
		if slices.Contains(ids(following), bad.ID) {
			t.Errorf("the fan still lists the suspended user among those they follow")
		}

		// Staff still see the report and the post, for the record.
		if listed := byID(a.reports(mod.AccessToken, statusDone, 100), r.GetId()); listed == nil || listed.GetPost().GetId() != reported.GetId() || listed.GetAction() != suspendAuthor {
			t.Errorf("listed report after suspension = %v", listed)
		}
	}, func(c *server.Config) { c.StreamPoll = time.Hour })
}
