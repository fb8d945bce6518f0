package mail

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/uptrace/bun"
	gomail "github.com/wneessen/go-mail"

	"github.com/flock-social/flock/internal/jobs"
)

// DefaultDelay is how long a queued email waits for its eager delivery
// before the job queue may take it (OutboxConfig.Delay).
const DefaultDelay = time.Minute

// MaxAttempts is how many times the job queue tries to deliver one email
// before it gives up. River waits attempt^4 seconds (10% jitter) after a
// failed attempt, so the 13th and last attempt comes about 17 hours after
// the first: an SMTP outage of up to that long delays email but loses none.
// It is shorter than a verification link's 24 hours; a link that expires
// earlier (Message.Expires) ends its email's attempts sooner.
const MaxAttempts = 13

// maxEager bounds the eager deliveries running at once on an instance; an
// email that finds no slot before its eager deadline is left to the queue.
const maxEager = 16

// OutboxConfig configures an Outbox.
type OutboxConfig struct {
	// Delay is how long after Queue the job queue may deliver an email
	// (default DefaultDelay). Its eager delivery must end within half of
	// it, so that the two never overlap; each attempt, eager or queued, is
	// bounded by Delay/2 on top of the mailer's own timeout.
	Delay time.Duration
	// NoEager makes Send do nothing, so that every email is delivered by
	// the job queue: for tests of what happens when a process dies between
	// its commit and its Send.
	NoEager bool
}

// Outbox delivers email durably. Queue adds an email to a database
// transaction as a job of the general job queue; Send, after the commit,
// delivers it at once in the background and deletes the job (the eager
// path). If the process dies before that, or the eager delivery fails, any
// instance working jobs.QueueGeneral delivers it from the job, retrying
// with River's backoff up to MaxAttempts times.
//
// An email is sent once unless a process stops (or its database becomes
// unreachable) between the SMTP server accepting the email and the job
// being marked done (deleted by the eager path, completed by a worker): it
// is then sent again. Delivery is at least once, not exactly once.
//
// Job arguments (river_job rows, kept for a day after completion) hold the
// email sealed with AES-256-GCM under a key derived from the server
// secret, never the recipient, subject or body (which carry live tokens)
// in plaintext. An email queued under another secret cannot be opened and
// is cancelled.
type Outbox struct {
	q      *jobs.Queue
	mailer Mailer
	aead   cipher.AEAD
	cfg    OutboxConfig
	log    *slog.Logger

	ctx    context.Context // ends when Close gives up waiting
	cancel context.CancelFunc
	slots  chan struct{} // eager deliveries running
	mu     sync.Mutex
	n      int           // Send goroutines running
	idle   chan struct{} // closed when n drops to 0

	stats outboxStats
}

// OutboxStats counts an Outbox's deliveries since it was made.
type OutboxStats struct {
	// SentEager and SentQueued count emails the SMTP server (or the file
	// or log mailer) accepted, right after their request or from the job
	// queue.
	SentEager, SentQueued uint64
	// FailedEager and FailedQueued count delivery attempts that failed.
	FailedEager, FailedQueued uint64
	// Abandoned counts emails given up: attempts used up, refused for good
	// by the SMTP server, expired, or unreadable (queued under another
	// secret).
	Abandoned uint64
}

type outboxStats struct {
	sentEager, sentQueued, failedEager, failedQueued, abandoned atomic.Uint64
}

// Stats returns the Outbox's counters.
func (o *Outbox) Stats() OutboxStats {
	return OutboxStats{
		SentEager: o.stats.sentEager.Load(), SentQueued: o.stats.sentQueued.Load(),
		FailedEager: o.stats.failedEager.Load(), FailedQueued: o.stats.failedQueued.Load(),
		Abandoned: o.stats.abandoned.Load(),
	}
}

// outboxKeyInfo names the key derived from the server secret; a change of
// the sealed format gets a new name.
const outboxKeyInfo = "flock mail outbox v1"

// NewOutbox returns an Outbox that queues on q and delivers with mailer. It
// registers its job's worker on q, so it must be called before q.Open; the
// instances that work jobs.QueueGeneral deliver the emails that need the
// queue. secret is the server secret (FLOCK_JWT_SECRET) that the sealing
// key is derived from; every instance must have the same one.
func NewOutbox(q *jobs.Queue, mailer Mailer, secret []byte, cfg OutboxConfig, log *slog.Logger) (*Outbox, error) {
	if len(secret) == 0 {
		return nil, errors.New("mail outbox: empty secret")
	}
	if cfg.Delay <= 0 {
		cfg.Delay = DefaultDelay
	}
	key, err := hkdf.Key(sha256.New, secret, nil, outboxKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("mail outbox: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("mail outbox: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("mail outbox: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	o := &Outbox{q: q, mailer: mailer, aead: aead, cfg: cfg, log: log, slots: make(chan struct{}, maxEager)}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	jobs.AddWorker(q, &sendWorker{o: o})
	// A running delivery must not be presumed lost and run again while it
	// is still within its bound.
	q.RescueAfter(cfg.Delay)
	return o, nil
}

// Pending collects the emails queued in one transaction, for Send to
// deliver once it has committed. Its zero value is empty. A Pending belongs
// to one transaction: when Queue sees another (store.DB.InTx running its
// function again after a deadlock), it forgets the emails of the earlier
// one, which rolled back.
type Pending struct {
	tx     *sql.Tx
	emails []pendingEmail
}

type pendingEmail struct {
	jobID    int64
	sealed   []byte
	msg      Message
	deadline time.Time // the eager delivery ends by then
}

// Len reports how many emails p holds.
func (p *Pending) Len() int { return len(p.emails) }

// sendArgs is the job of one email. Sealed is the Message as JSON, sealed
// with the outbox key: a 12-byte nonce followed by the AES-GCM ciphertext.
type sendArgs struct {
	Sealed []byte `json:"sealed"`
}

// Kind names the job in river_job.
func (sendArgs) Kind() string { return "mail.send" }

// InsertOpts puts emails on the general queue. Deliveries are not unique:
// two identical emails are two emails.
func (sendArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueGeneral, MaxAttempts: MaxAttempts}
}

// Queue adds msg to tx as a job of the job queue, and to p: the email
// exists if and only if tx commits. The job becomes due after the
// configured delay; Send, after the commit, delivers it before then.
// Returns an error if msg.To is not one address or the job cannot be
// inserted (then tx should roll back).
func (o *Outbox) Queue(ctx context.Context, tx bun.Tx, p *Pending, msg Message) error {
	if _, err := netmail.ParseAddress(msg.To); err != nil {
		return fmt.Errorf("queue email: recipient %q: %w", msg.To, err)
	}
	sealed, err := o.seal(msg)
	if err != nil {
		return fmt.Errorf("queue email: %w", err)
	}
	now := time.Now()
	id, err := o.q.InsertTxID(ctx, tx, sendArgs{Sealed: sealed}, &river.InsertOpts{ScheduledAt: now.Add(o.cfg.Delay)})
	if err != nil {
		return fmt.Errorf("queue email: %w", err)
	}
	if p.tx != tx.Tx {
		p.tx, p.emails = tx.Tx, nil
	}
	p.emails = append(p.emails, pendingEmail{jobID: id, sealed: sealed, msg: msg, deadline: now.Add(o.cfg.Delay / 2)})
	return nil
}

// Send, after the commit, delivers p's emails at once in the background
// (the eager path) and removes each delivered one's job; p is emptied.
// Each delivery ends by half the delay after its Queue, well before its
// job becomes due. An email whose job no longer waits (the transaction
// rolled back, or the queue has it) is skipped; one that fails is handed
// to the queue at once (its job made available), to be retried there.
func (o *Outbox) Send(p *Pending) {
	if p == nil || len(p.emails) == 0 {
		return
	}
	emails := p.emails
	p.tx, p.emails = nil, nil
	if o.cfg.NoEager || o.ctx.Err() != nil {
		return
	}
	o.mu.Lock()
	if o.n == 0 {
		o.idle = make(chan struct{})
	}
	o.n++
	o.mu.Unlock()
	go func() {
		defer func() {
			o.mu.Lock()
			if o.n--; o.n == 0 {
				close(o.idle)
			}
			o.mu.Unlock()
		}()
		for _, e := range emails {
			o.sendEager(e)
		}
	}()
}

// Close waits for eager deliveries in flight. If ctx ends first, it
// cancels them (their jobs stay queued, so the queue delivers them), waits
// for them to return, and returns ctx's error; later Sends then leave
// their emails to the queue. Close may be called more than once.
func (o *Outbox) Close(ctx context.Context) error {
	o.mu.Lock()
	idle := o.idle
	o.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		o.cancel()
		<-idle
		return ctx.Err()
	}
}

// sendEager delivers one email if its job still waits for it.
func (o *Outbox) sendEager(e pendingEmail) {
	ctx, cancel := context.WithDeadline(o.ctx, e.deadline)
	defer cancel()
	select {
	case o.slots <- struct{}{}:
		defer func() { <-o.slots }()
	case <-ctx.Done():
		return // the queue delivers it
	}
	job, err := o.q.Get(ctx, e.jobID)
	if errors.Is(err, jobs.ErrNotFound) {
		return // rolled back
	} else if err != nil {
		o.log.Warn("email left to the job queue: cannot read its job", "job_id", e.jobID, "err", err)
		return
	}
	var args sendArgs
	if job.State != rivertype.JobStateScheduled || json.Unmarshal(job.EncodedArgs, &args) != nil || !bytes.Equal(args.Sealed, e.sealed) {
		// Not ours (SQLite reuses the IDs of rolled-back rows), or no
		// longer waiting: the queue delivers it.
		return
	}
	err = o.mailer.Send(ctx, e.msg)
	// The job must learn the outcome even when Close cancelled the send.
	jctx, jcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer jcancel()
	if err != nil {
		o.stats.failedEager.Add(1)
		if rerr := o.q.Retry(jctx, e.jobID); rerr != nil {
			o.log.Warn("email not sent; the job queue retries it when it is due", "job_id", e.jobID, "err", err, "retry_err", rerr)
			return
		}
		o.log.Warn("email not sent; the job queue retries it now", "job_id", e.jobID, "err", err)
		return
	}
	o.stats.sentEager.Add(1)
	if err := o.q.Delete(jctx, e.jobID); err != nil {
		// The job runs when due and sends the email a second time.
		o.log.Warn("email sent, but its job was not removed: it will be sent again", "job_id", e.jobID, "err", err)
	}
}

// sendWorker delivers the emails the eager path did not.
type sendWorker struct {
	river.WorkerDefaults[sendArgs]
	o *Outbox
}

// Timeout bounds one attempt, like an eager one.
func (w *sendWorker) Timeout(*river.Job[sendArgs]) time.Duration { return w.o.cfg.Delay / 2 }

// Work sends the email. A failure is returned for River to retry with its
// backoff; an email that can never be sent (refused for good by the SMTP
// server, expired, or unreadable) is cancelled.
func (w *sendWorker) Work(ctx context.Context, job *river.Job[sendArgs]) error {
	o := w.o
	msg, err := o.open(job.Args.Sealed)
	if err != nil {
		o.stats.abandoned.Add(1)
		o.log.Error("email dropped: cannot open it (was FLOCK_JWT_SECRET changed?)", "job_id", job.ID, "err", err)
		return river.JobCancel(err)
	}
	if !msg.Expires.IsZero() && time.Now().After(msg.Expires) {
		o.stats.abandoned.Add(1)
		o.log.Error("email dropped: its link expired before it could be delivered", "job_id", job.ID, "attempt", job.Attempt)
		return river.JobCancel(errors.New("the email expired before it could be delivered"))
	}
	if err := o.mailer.Send(ctx, msg); err != nil {
		o.stats.failedQueued.Add(1)
		switch {
		case permanent(err):
			o.stats.abandoned.Add(1)
			o.log.Error("email dropped: refused by the SMTP server", "job_id", job.ID, "err", err)
			return river.JobCancel(err)
		case job.Attempt >= job.MaxAttempts:
			o.stats.abandoned.Add(1)
			o.log.Error("email dropped: its last attempt failed", "job_id", job.ID, "attempt", job.Attempt, "err", err)
		default:
			o.log.Warn("email not sent; retrying later", "job_id", job.ID, "attempt", job.Attempt, "err", err)
		}
		return err
	}
	o.stats.sentQueued.Add(1)
	return nil
}

// permanent reports whether a delivery failed for good: the recipient is
// not an address, or the SMTP server refused the recipient with a 5xx
// reply. Other failures (the server unreachable, a 4xx reply, wrong
// credentials) may pass, so they are retried.
func permanent(err error) bool {
	var se *gomail.SendError
	if errors.As(err, &se) {
		return se.Reason == gomail.ErrSMTPRcptTo && se.ErrorCode() >= 500 && se.ErrorCode() < 600
	}
	return errors.Is(err, errBadRecipient)
}

// sealedMessage is what the sealed job argument holds.
type sealedMessage struct {
	To      string    `json:"to"`
	Subject string    `json:"subject"`
	Text    string    `json:"text"`
	HTML    string    `json:"html,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
}

func (o *Outbox) seal(m Message) ([]byte, error) {
	plain, err := json.Marshal(sealedMessage(m))
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, o.aead.NonceSize(), o.aead.NonceSize()+len(plain)+o.aead.Overhead())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	return o.aead.Seal(nonce, nonce, plain, []byte(outboxKeyInfo)), nil
}

func (o *Outbox) open(sealed []byte) (Message, error) {
	n := o.aead.NonceSize()
	if len(sealed) < n {
		return Message{}, errors.New("open email: too short")
	}
	plain, err := o.aead.Open(nil, sealed[:n], sealed[n:], []byte(outboxKeyInfo))
	if err != nil {
		return Message{}, fmt.Errorf("open email: %w", err)
	}
	var m sealedMessage
	if err := json.Unmarshal(plain, &m); err != nil {
		return Message{}, fmt.Errorf("open email: %w", err)
	}
	return Message(m), nil
}
