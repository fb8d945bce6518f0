package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flock-social/flock/internal/store"
)

// timelineCounters are the server's flock_timeline_* counters (absent on a
// server without materialized timelines).
type timelineCounters struct {
	ok                                     bool
	reads, fallbacks, fanouts, entries, fs float64
}

// readTimelineCounters scrapes base/metrics.
func readTimelineCounters(client *http.Client, base string) timelineCounters {
	var t timelineCounters
	res, err := client.Get(base + "/metrics")
	if err != nil {
		return t
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			continue
		}
		switch name {
		case "flock_timeline_reads_total":
			t.reads, t.ok = f, true
		case "flock_timeline_fallbacks_total":
			t.fallbacks = f
		case "flock_timeline_fanouts_total":
			t.fanouts = f
		case "flock_timeline_fanout_entries_total":
			t.entries = f
		case "flock_timeline_fanout_seconds_total":
			t.fs = f
		}
	}
	return t
}

// note describes the change from t0 to t for a result's note.
func (t timelineCounters) note(t0 timelineCounters) string {
	if !t.ok || !t0.ok {
		return ""
	}
	s := fmt.Sprintf("timeline reads %.0f, fallbacks %.0f", t.reads-t0.reads, t.fallbacks-t0.fallbacks)
	if n := t.fanouts - t0.fanouts; n > 0 {
		s += fmt.Sprintf(", fan-outs %.0f (%.0f entries, %.3f s)", n, t.entries-t0.entries, t.fs-t0.fs)
	}
	return s
}

// waitFanout waits until the server has fanned out every pending post
// (timeline_pending is empty) and filled every new timeline (none is
// building); a database without the tables has nothing to wait for, at most limit; it returns how long it waited and whether the
// queue drained.
func waitFanout(ctx context.Context, db *store.DB, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	for {
		n, err := db.NewSelect().TableExpr("timeline_pending").Count(ctx)
		if err == nil && n == 0 {
			n, err = db.NewSelect().TableExpr("timelines").Where("state = ?", store.TimelineBuilding).Count(ctx)
		}
		if err != nil || n == 0 {
			return time.Since(start), true
		}
		if time.Since(start) > limit {
			return time.Since(start), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
