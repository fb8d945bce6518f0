package mail_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock/internal/jobs"
	"github.com/flock-social/flock/internal/mail"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/testutil"
)

var outboxSecret = []byte("outbox-test-secret-0123456789abcdef")

// mailJob is a row of river_job of the outbox's kind.
type mailJob struct {
	ID      int64  `bun:"id"`
	State   string `bun:"state"`
	Attempt int    `bun:"attempt"`
	Args    string `bun:"args"`
}

func mailJobs(tb testing.TB, db *store.DB) []mailJob {
	tb.Helper()
	var rows []mailJob
	args := "CAST(args AS TEXT)" // jsonb on Postgres
	if db.Engine == store.SQLite {
		args = "json(args)" // River's SQLite driver keeps SQLite's binary JSONB
	}
	if err := db.NewRaw("SELECT id, state, attempt, "+args+" AS args FROM river_job WHERE kind = ? ORDER BY id", "mail.send").
		Scan(context.Background(), &rows); err != nil {
		tb.Fatalf("read river_job: %v", err)
	}
	return rows
}

// mustMailJobs waits (up to 30s) until ok holds for the outbox's jobs.
func mustMailJobs(tb testing.TB, db *store.DB, what string, ok func([]mailJob) bool) []mailJob {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows := mailJobs(tb, db)
		if ok(rows) {
			return rows
		} else if time.Now().After(deadline) {
			tb.Fatalf("waited 30s for %s; jobs: %+v", what, rows)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// instance is what one Flock process has for email: a job queue on the
// store (working jobs.QueueGeneral with workers, if any) and an outbox.
type instance struct {
	q *jobs.Queue
	o *mail.Outbox
}

// mustInstance opens an instance on db, closed at the end of the test or
// by stop.
func mustInstance(tb testing.TB, db *store.DB, dsn, mailer string, secret []byte, cfg mail.OutboxConfig, workers int) *instance {
	tb.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	m, err := mail.Open(mailer, "", log)
	if err != nil {
		tb.Fatal(err)
	}
	in := &instance{q: jobs.New(jobs.Config{Poll: 20 * time.Millisecond}, log)}
	jobs.AddQueue(in.q, jobs.QueueGeneral, workers)
	if in.o, err = mail.NewOutbox(in.q, m, secret, cfg, log); err != nil {
		tb.Fatal(err)
	}
	if err := in.q.Open(ctx, db, dsn); err != nil {
		tb.Fatal(err)
	}
	if err := in.q.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(in.stop)
	return in
}

// stop closes the instance as App.Close does: the outbox, then the queue.
func (in *instance) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = in.o.Close(ctx)
	_ = in.q.Close(ctx)
}

// queue queues msgs in one transaction that commits, or rolls back when
// rollback is set, and returns what Send needs.
func (in *instance) queue(tb testing.TB, db *store.DB, rollback bool, msgs ...mail.Message) *mail.Pending {
	tb.Helper()
	var p mail.Pending
	errRollback := errors.New("roll back")
	err := db.InTx(context.Background(), func(ctx context.Context, tx bun.Tx) error {
		for _, m := range msgs {
			if err := in.o.Queue(ctx, tx, &p, m); err != nil {
				return err
			}
		}
		if rollback {
			return errRollback
		}
		return nil
	})
	if rollback && !errors.Is(err, errRollback) || !rollback && err != nil {
		tb.Fatalf("transaction: %v", err)
	}
	return &p
}

const secretLink = "https://flock.test/verify-email?token=s3cr3t-t0ken-abc"

func testEmail(to string) mail.Message {
	return mail.Message{To: to, Subject: "Verify your Flock email address", Text: "Open " + secretLink + " to verify.\n"}
}

// An email queued in a transaction that commits is sent once, right after
// the commit, and its job is removed; one queued in a transaction that
// rolls back is never sent.
func TestOutbox_SendsOnceRightAfterCommit(t *testing.T) {
	t.Parallel()
	for _, engine := range testutil.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			db, dsn := testutil.MustStoreURL(t, engine)
			smtp := testutil.MustSMTPServer(t)
			in := mustInstance(t, db, dsn, smtp.URL(), outboxSecret, mail.OutboxConfig{}, 0)
			ctx := t.Context()

			t.Run("committed: sent once, job removed", func(t *testing.T) {
				p := in.queue(t, db, false, testEmail("bob@example.com"))
				in.o.Send(p)
				if err := in.o.Close(ctx); err != nil {
					t.Fatal(err)
				}
				msgs := smtp.Messages()
				if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != "bob@example.com" {
					t.Fatalf("messages = %+v, want one to bob", msgs)
				}
				if text := msgs[0].Text(t); !strings.Contains(text, secretLink) {
					t.Errorf("text %q lacks the link", text)
				}
				if rows := mailJobs(t, db); len(rows) != 0 {
					t.Errorf("jobs left: %+v", rows)
				}
				if s := in.o.Stats(); s.SentEager != 1 || s.FailedEager != 0 {
					t.Errorf("stats = %+v", s)
				}
			})

			t.Run("rolled back: nothing sent, no job", func(t *testing.T) {
				before := len(smtp.Messages())
				p := in.queue(t, db, true, testEmail("carol@example.com"))
				in.o.Send(p)
				if err := in.o.Close(ctx); err != nil {
					t.Fatal(err)
				}
				if n := len(smtp.Messages()) - before; n != 0 {
					t.Errorf("%d messages sent", n)
				}
				if rows := mailJobs(t, db); len(rows) != 0 {
					t.Errorf("jobs: %+v", rows)
				}
			})

			// store.DB.InTx runs its function again after a deadlock: the
			// emails of the attempt that rolled back must not go out.
			t.Run("a Pending keeps only its last transaction's emails", func(t *testing.T) {
				before := len(smtp.Messages())
				var p mail.Pending
				errRetry := errors.New("deadlock, try again")
				for i, subject := range []string{"first attempt", "second attempt"} {
					err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
						msg := testEmail("dave@example.com")
						msg.Subject = subject
						if err := in.o.Queue(ctx, tx, &p, msg); err != nil {
							return err
						}
						if i == 0 {
							return errRetry
						}
						return nil
					})
					if i == 0 && !errors.Is(err, errRetry) || i == 1 && err != nil {
						t.Fatalf("attempt %d: %v", i+1, err)
					}
				}
				if p.Len() != 1 {
					t.Errorf("pending holds %d emails, want 1", p.Len())
				}
				in.o.Send(&p)
				if err := in.o.Close(ctx); err != nil {
					t.Fatal(err)
				}
				msgs := smtp.Messages()[before:]
				if len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), "Subject: second attempt") {
					t.Errorf("messages = %d, want the second attempt's only", len(msgs))
				}
			})
		})
	}
}

// A process that commits an email and stops before sending it (here: it
// never calls Send) loses nothing: another instance working the general
// queue sends it once, when its job is due.
func TestOutbox_CrashBeforeSend_NextInstanceSendsOnce(t *testing.T) {
	t.Parallel()
	for _, engine := range testutil.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			db, dsn := testutil.MustStoreURL(t, engine)
			smtp := testutil.MustSMTPServer(t)
			cfg := mail.OutboxConfig{Delay: time.Second}
			first := mustInstance(t, db, dsn, smtp.URL(), outboxSecret, cfg, 0)
			first.queue(t, db, false, testEmail("bob@example.com")) // no Send: the process dies
			first.stop()
			if n := len(smtp.Messages()); n != 0 {
				t.Fatalf("%d messages sent before the next instance", n)
			}

			next := mustInstance(t, db, dsn, smtp.URL(), outboxSecret, cfg, 1)
			rows := mustMailJobs(t, db, "the job to complete", func(rows []mailJob) bool {
				return len(rows) == 1 && rows[0].State == "completed"
			})
			if rows[0].Attempt != 1 {
				t.Errorf("delivered on attempt %d, want 1", rows[0].Attempt)
			}
			msgs := smtp.Messages()
			if len(msgs) != 1 || !strings.Contains(msgs[0].Text(t), secretLink) {
				t.Fatalf("%d messages, want the one email", len(msgs))
			}
			if s := next.o.Stats(); s.SentQueued != 1 {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

// river_job rows are kept after completion: the job holds the email sealed
// (AES-GCM under a key derived from the server secret), never the token,
// the recipient or the text. An instance with another secret cannot open
// it and cancels the job instead of retrying it.
func TestOutbox_JobArgsHoldNoPlaintext(t *testing.T) {
	t.Parallel()
	for _, engine := range testutil.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			db, dsn := testutil.MustStoreURL(t, engine)
			smtp := testutil.MustSMTPServer(t)
			cfg := mail.OutboxConfig{Delay: time.Second, NoEager: true}
			first := mustInstance(t, db, dsn, smtp.URL(), outboxSecret, cfg, 0)
			msg := testEmail("bob@example.com")
			first.o.Send(first.queue(t, db, false, msg))
			first.stop()
			rows := mailJobs(t, db)
			if len(rows) != 1 {
				t.Fatalf("jobs = %+v", rows)
			}
			// The args are the sealed email alone. Its base64 may hold any
			// short run of letters ("bob" turned up in one run), so the
			// plaintext is looked for in the rest of the args and, for the
			// texts with a character base64 never writes, in all of them.
			var args map[string]any
			if err := json.Unmarshal([]byte(rows[0].Args), &args); err != nil {
				t.Fatalf("job args %s: %v", rows[0].Args, err)
			}
			sealed, _ := args["sealed"].(string)
			if len(args) != 1 || sealed == "" {
				t.Fatalf("job args %s: want the sealed email alone", rows[0].Args)
			}
			if _, err := base64.StdEncoding.DecodeString(sealed); err != nil {
				t.Fatalf("sealed email %q is not base64: %v", sealed, err)
			}
			rest := strings.Replace(rows[0].Args, sealed, "", 1)
			for _, plain := range []string{"s3cr3t-t0ken-abc", "bob@example.com", "verify-email", "bob", "Verify"} {
				in := rest
				if strings.ContainsAny(plain, "-@.") {
					in = rows[0].Args
				}
				if strings.Contains(in, plain) {
					t.Errorf("job args %s contain %q", rows[0].Args, plain)
				}
			}

			other := mustInstance(t, db, dsn, smtp.URL(), []byte("another-secret-0123456789abcdefghij"), cfg, 1)
			mustMailJobs(t, db, "the job to be cancelled", func(rows []mailJob) bool {
				return len(rows) == 1 && rows[0].State == "cancelled"
			})
			if n := len(smtp.Messages()); n != 0 {
				t.Errorf("%d messages sent", n)
			}
			if s := other.o.Stats(); s.Abandoned != 1 {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

// A recipient the SMTP server refuses for good (550) is tried once by the
// eager path and once by the queue, then given up, not retried for hours.
func TestOutbox_RefusedRecipient_NotRetried(t *testing.T) {
	t.Parallel()
	for _, engine := range testutil.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			db, dsn := testutil.MustStoreURL(t, engine)
			smtp := testutil.MustSMTPServer(t)
			in := mustInstance(t, db, dsn, smtp.URL(), outboxSecret, mail.OutboxConfig{}, 1)
			in.o.Send(in.queue(t, db, false, testEmail("nobody@"+testutil.RejectedDomain)))
			rows := mustMailJobs(t, db, "the job to be cancelled", func(rows []mailJob) bool {
				return len(rows) == 1 && rows[0].State == "cancelled"
			})
			if rows[0].Attempt != 1 {
				t.Errorf("attempts = %d, want 1", rows[0].Attempt)
			}
			if s := in.o.Stats(); s.FailedEager != 1 || s.FailedQueued != 1 || s.Abandoned != 1 {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

// Queue refuses a message whose recipient is not an address, before
// anything is stored.
func TestOutbox_Queue_RefusesABadRecipient(t *testing.T) {
	t.Parallel()
	db, dsn := testutil.MustStoreURL(t, store.SQLite)
	in := mustInstance(t, db, dsn, "log", outboxSecret, mail.OutboxConfig{}, 0)
	var p mail.Pending
	err := db.InTx(t.Context(), func(ctx context.Context, tx bun.Tx) error {
		return in.o.Queue(ctx, tx, &p, mail.Message{To: "not an address", Text: "x"})
	})
	if err == nil {
		t.Fatal("want error")
	}
	if p.Len() != 0 || len(mailJobs(t, db)) != 0 {
		t.Errorf("queued anyway")
	}
}
