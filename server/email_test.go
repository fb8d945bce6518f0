package server_test

import (
	"context"
	"testing"
	"time"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// emailJob is a row of river_job of the outbox's kind.
type emailJob struct {
	State   string `bun:"state"`
	Attempt int    `bun:"attempt"`
}

// mustEmailJob waits (up to 30s) until the one email job of db satisfies ok.
func mustEmailJob(t *testing.T, db *store.DB, what string, ok func(emailJob) bool) emailJob {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var rows []emailJob
		if err := db.NewRaw("SELECT state, attempt FROM river_job WHERE kind = ?", "mail.send").Scan(context.Background(), &rows); err != nil {
			t.Fatalf("read river_job: %v", err)
		}
		if len(rows) > 1 {
			t.Fatalf("%d email jobs, want 1: %+v", len(rows), rows)
		}
		if len(rows) == 1 && ok(rows[0]) {
			return rows[0]
		} else if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s; jobs: %+v", what, rows)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func register(t *testing.T, s *tu.Server, username string) string {
	t.Helper()
	email := username + "@example.com"
	tu.MustCall[flockv1.RegisterResponse](t, s, tu.Connect, flockv1connect.UserServiceRegisterProcedure, "",
		&flockv1.RegisterRequest{Username: username, Email: email, Password: "password-of-" + username, FullName: username})
	return email
}

// mustOneVerificationEmail checks that smtp received exactly one message,
// a verification email to address whose token verifies it on s.
func mustOneVerificationEmail(t *testing.T, s *tu.Server, smtp *tu.SMTPServer, address string) {
	t.Helper()
	msgs := smtp.Messages()
	if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != address {
		t.Fatalf("SMTP server received %d messages, want one to %s", len(msgs), address)
	}
	token := msgs[0].VerificationToken(t)
	if token == "" {
		t.Fatalf("email has no verification link:\n%s", msgs[0].Text(t))
	}
	tu.MustCall[flockv1.VerifyEmailResponse](t, s, tu.Connect, flockv1connect.UserServiceVerifyEmailProcedure, "",
		&flockv1.VerifyEmailRequest{Token: token})
}

// While the SMTP server is down, a registration still succeeds; its
// verification email is retried by the job queue with River's backoff and
// arrives once, after the server is back.
func TestEmail_SMTPOutage_VerificationArrivesOnceAfterRecovery(t *testing.T) {
	t.Parallel()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			smtp := tu.MustSMTPServer(t)
			smtp.SetDown(true)
			s := tu.MustServer(t, engine, func(c *server.Config) { c.Mailer, c.JobWorkers = smtp.URL(), 1 })
			address := register(t, s, "alice")
			// The eager attempt failed, then the queue's first attempt (a
			// retry due within seconds is "available" at once, not
			// "retryable").
			mustEmailJob(t, s.App.DB(), "a failed attempt from the queue", func(j emailJob) bool {
				return j.Attempt >= 1 && (j.State == "available" || j.State == "retryable")
			})
			smtp.SetDown(false)
			smtp.MustMessages(t, 1)
			job := mustEmailJob(t, s.App.DB(), "the job to complete", func(j emailJob) bool { return j.State == "completed" })
			if job.Attempt < 2 {
				t.Errorf("sent on attempt %d, want a retry", job.Attempt)
			}
			// Completed: no attempt remains, so no second copy can come.
			mustOneVerificationEmail(t, s, smtp, address)
			if n := smtp.Refused(); n < 2 {
				t.Errorf("SMTP server refused %d connections, want the eager one and the queue's", n)
			}
			if got := s.Metric(t, `flock_emails_sent_total{path="queue"}`); got != 1 {
				t.Errorf("sent from the queue = %v, want 1", got)
			}
			if got := s.Metric(t, `flock_email_failures_total{path="eager"}`); got != 1 {
				t.Errorf("eager failures = %v, want 1", got)
			}
		})
	}
}

// An instance that could not send an email before it stopped leaves it in
// the queue; the next instance to work the queue sends it once.
func TestEmail_InstanceStopsBeforeSending_NextInstanceSendsOnce_P19(t *testing.T) {
	t.Parallel()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			smtp := tu.MustSMTPServer(t)
			smtp.SetDown(true)
			dbURL, dataDir := tu.MustDatabaseURL(t, engine), t.TempDir()
			shared := func(c *server.Config) { c.DatabaseURL, c.DataDir, c.Mailer = dbURL, dataDir, smtp.URL() }
			var address string
			t.Run("register on an instance that works no jobs, then stop it", func(t *testing.T) {
				s := tu.MustServer(t, engine, shared)
				address = register(t, s, "alice")
				mustEmailJob(t, s.App.DB(), "the eager attempt to fail", func(j emailJob) bool {
					return j.State == "available" && j.Attempt == 0
				})
			})
			smtp.SetDown(false)
			s := tu.MustServer(t, engine, shared, func(c *server.Config) { c.JobWorkers = 1 })
			smtp.MustMessages(t, 1)
			job := mustEmailJob(t, s.App.DB(), "the job to complete", func(j emailJob) bool { return j.State == "completed" })
			if job.Attempt != 1 {
				t.Errorf("sent on attempt %d, want 1", job.Attempt)
			}
			mustOneVerificationEmail(t, s, smtp, address)
		})
	}
}

// Normally the email goes out right after the request and its job is
// deleted, whether or not this instance works the queue.
func TestEmail_SentRightAfterTheRequest_JobRemoved(t *testing.T) {
	t.Parallel()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			smtp := tu.MustSMTPServer(t)
			s := tu.MustServer(t, engine, func(c *server.Config) { c.Mailer = smtp.URL() })
			address := register(t, s, "alice")
			smtp.MustMessages(t, 1)
			deadline := time.Now().Add(30 * time.Second)
			for {
				var n int
				if err := s.App.DB().NewRaw("SELECT count(*) FROM river_job WHERE kind = ?", "mail.send").Scan(t.Context(), &n); err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				} else if time.Now().After(deadline) {
					t.Fatalf("the email's job is still there after 30s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			mustOneVerificationEmail(t, s, smtp, address)
			if got := s.Metric(t, `flock_emails_sent_total{path="eager"}`); got != 1 {
				t.Errorf("sent eagerly = %v, want 1", got)
			}
		})
	}
}
