package notify

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// records keeps the log records a test's logger writes.
type records struct {
	mu   sync.Mutex
	list []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec.Clone())
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) attr(i int, key string) slog.Value {
	r.mu.Lock()
	defer r.mu.Unlock()
	var v slog.Value
	r.list[i].Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

func (r *records) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.list)
}

// While the broker is away every wake-up fails: one warning per
// publishWarnEvery, and the next one says how many it left out. The
// bubble's clock moves only when the test sleeps, so the window is exact.
func TestWarnPublish_OneLinePerIntervalWithTheCountLeftOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logged := &records{}
		s := &Service{log: slog.New(logged)}
		down := errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
		for range 500 {
			s.warnPublish(t.Context(), "n:1", down)
		}
		if n := logged.len(); n != 1 {
			t.Fatalf("500 failed wake-ups in an instant logged %d lines, want 1", n)
		}
		time.Sleep(publishWarnEvery - time.Millisecond)
		s.warnPublish(t.Context(), "n:1", down)
		if n := logged.len(); n != 1 {
			t.Fatalf("a failure just inside the window logged a line (%d lines)", n)
		}
		time.Sleep(time.Millisecond)
		s.warnPublish(t.Context(), "n:2", down)
		if n := logged.len(); n != 2 {
			t.Fatalf("a failure once the window passed: %d lines, want 2", n)
		}
		if got := logged.attr(1, "not_logged_since_last").Int64(); got != 500 {
			t.Fatalf("the second line counts %d failures left out, want 500", got)
		}
		if got := logged.attr(1, "channel").String(); got != "n:2" {
			t.Fatalf("the second line names channel %q, want the failure that wrote it (n:2)", got)
		}
	})
}
