package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flock-social/flock/internal/store"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux platform Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime returns the CPU time (user + system) pid has used; 0 when it is
// gone.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * clockTick
}

// memory returns pid's peak and current resident set size in bytes
// (VmHWM, VmRSS of /proc/<pid>/status).
func memory(pid int) (peak, rss int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmHWM":
			peak = n << 10
		case "VmRSS":
			rss = n << 10
		}
	}
	return peak, rss
}

// resetPeak starts pid's VmHWM again from its current RSS (clear_refs 5,
// Linux 4.0+), so that each scenario reports its own peak; false when the
// kernel refuses.
func resetPeak(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// pidsNamed returns the processes whose command name (comm) is name.
func pidsNamed(name string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(b)) == name {
			pids = append(pids, pid)
		}
	}
	return pids
}

// pgAuxiliary returns the Postgres processes that work for every database
// (WAL writer, checkpointer, background writer), found by their titles.
func pgAuxiliary() []int {
	var pids []int
	for _, pid := range pidsNamed("postgres") {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		title := string(b)
		for _, aux := range []string{"walwriter", "checkpointer", "background writer"} {
			if strings.Contains(title, aux) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// cpuMeter reads the CPU time of the server and of the database and Redis
// processes that serve it. Postgres is shared with other users of the
// machine, so only the backends connected to the benchmark database (found
// in pg_stat_activity) and the shared auxiliary processes count. Backends
// come and go (the server's pool closes connections beyond its idle
// limit), so while a measurement runs they are looked up every 50 ms and
// each one's last reading kept: a backend that ends counts up to its last
// reading.
type cpuMeter struct {
	flockPID int
	db       *store.DB // Postgres only; nil for SQLite (in the flock process)
	redis    []int

	before cpuSample
	mu     sync.Mutex
	last   map[int]time.Duration // CPU of each database process at its last reading
	stop   context.CancelFunc
	done   sync.WaitGroup
}

// cpuSample is CPU time per process at one moment.
type cpuSample struct {
	flock time.Duration
	db    map[int]time.Duration
	redis time.Duration
}

// cpuUse is the CPU time used during a measurement.
type cpuUse struct {
	flock, db, redis time.Duration
	// backends is the number of database backends that started during it
	// (connections the server opened).
	backends int
}

func (u cpuUse) total() time.Duration { return u.flock + u.db + u.redis }

func (m *cpuMeter) sample(ctx context.Context) cpuSample {
	s := cpuSample{flock: cpuTime(m.flockPID), db: map[int]time.Duration{}}
	for _, pid := range m.redis {
		s.redis += cpuTime(pid)
	}
	if m.db == nil {
		return s
	}
	var pids []int
	// pg_stat_activity lists our own connection too: leave it out.
	if err := m.db.NewSelect().ColumnExpr("pid").TableExpr("pg_stat_activity").
		Where("datname = current_database() AND pid <> pg_backend_pid()").Scan(ctx, &pids); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "load: list database backends:", err)
	}
	for _, pid := range append(pids, pgAuxiliary()...) {
		if t := cpuTime(pid); t > 0 {
			s.db[pid] = t
		}
	}
	return s
}

// start begins a measurement.
func (m *cpuMeter) start(ctx context.Context) {
	m.before = m.sample(ctx)
	m.last = maps.Clone(m.before.db)
	if m.db == nil {
		return
	}
	ctx, m.stop = context.WithCancel(ctx)
	m.done.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			m.record(m.sample(ctx))
		}
	})
}

func (m *cpuMeter) record(s cpuSample) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for pid, t := range s.db {
		m.last[pid] = max(m.last[pid], t)
	}
}

// end ends the measurement and returns the CPU used since start.
func (m *cpuMeter) end(ctx context.Context) cpuUse {
	if m.stop != nil {
		m.stop()
		m.done.Wait()
	}
	after := m.sample(ctx)
	m.record(after)
	u := cpuUse{flock: after.flock - m.before.flock, redis: after.redis - m.before.redis}
	for pid, t := range m.last {
		before, ok := m.before.db[pid]
		if !ok {
			u.backends++
		}
		u.db += t - before
	}
	return u
}
