package main

import (
	"fmt"
	"strings"
	"time"
)

// result is one row of the report.
type result struct {
	Engine      string   `json:"engine"`
	Profile     string   `json:"profile"`
	Scenario    string   `json:"scenario"`
	Transport   string   `json:"transport"`
	Concurrency int      `json:"concurrency"`
	Requests    int      `json:"requests"`
	Seconds     float64  `json:"seconds"`
	ReqPerSec   float64  `json:"reqPerSec"`
	P50ms       float64  `json:"p50Ms"`
	P90ms       float64  `json:"p90Ms"`
	P99ms       float64  `json:"p99Ms"`
	MaxMs       float64  `json:"maxMs"`
	Errors      int      `json:"errors"`
	ErrorSample []string `json:"errorSamples,omitempty"`
	// CPU per request in milliseconds: all counted processes, and the
	// database's and Redis's part of it.
	CPUms      float64 `json:"cpuMsPerRequest"`
	DBCPUms    float64 `json:"dbCpuMsPerRequest"`
	RedisCPUms float64 `json:"redisCpuMsPerRequest"`
	PeakRSSMiB float64 `json:"peakRssMiB"`
	Note       string  `json:"note,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func newResult(c config, scenario, transport string, concurrency int, st *stats, use cpuUse, peak int64) result {
	n := len(st.latencies)
	r := result{
		Engine: c.engine, Profile: c.profile, Scenario: scenario, Transport: transport, Concurrency: concurrency,
		Requests: n, Seconds: st.elapsed.Seconds(), Errors: st.errors, ErrorSample: st.samples,
		P50ms: ms(st.quantile(0.50)), P90ms: ms(st.quantile(0.90)), P99ms: ms(st.quantile(0.99)), MaxMs: ms(st.quantile(1)),
		PeakRSSMiB: float64(peak) / (1 << 20),
	}
	if st.elapsed > 0 {
		r.ReqPerSec = float64(n) / st.elapsed.Seconds()
	}
	if n > 0 {
		r.CPUms = ms(use.total()) / float64(n)
		r.DBCPUms = ms(use.db) / float64(n)
		r.RedisCPUms = ms(use.redis) / float64(n)
	}
	return r
}

const tableHeader = "| engine | scenario | transport | in flight | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | CPU ms/req | of it DB | peak RSS MiB | note |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"

// row renders r as a markdown table row matching tableHeader.
func (r result) row() string {
	db := "-"
	if r.Engine == "postgres" || r.RedisCPUms > 0 {
		db = fmt.Sprintf("%.3f", r.DBCPUms+r.RedisCPUms)
	}
	cells := []string{
		r.Engine, r.Scenario, r.Transport, fmt.Sprint(r.Concurrency), fmt.Sprint(r.Requests), fmt.Sprintf("%.0f", r.ReqPerSec),
		fmt.Sprintf("%.2f", r.P50ms), fmt.Sprintf("%.2f", r.P90ms), fmt.Sprintf("%.2f", r.P99ms), fmt.Sprintf("%.1f", r.MaxMs),
		fmt.Sprint(r.Errors), fmt.Sprintf("%.3f", r.CPUms), db, fmt.Sprintf("%.0f", r.PeakRSSMiB), r.Note,
	}
	return "| " + strings.Join(cells, " | ") + " |"
}
