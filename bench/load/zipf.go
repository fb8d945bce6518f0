package main

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/oklog/ulid/v2"
)

// zipf draws ranks 0..n-1 with P(k) proportional to 1/(k+1)^s, for any
// s >= 0 (math/rand's Zipf needs s > 1, too steep for a follow graph whose
// top account has 1% of all follows).
type zipf struct {
	cdf []float64
}

func newZipf(n int, s float64) *zipf {
	z := &zipf{cdf: make([]float64, n)}
	var sum float64
	for k := range n {
		sum += math.Pow(float64(k+1), -s)
		z.cdf[k] = sum
	}
	for k := range z.cdf {
		z.cdf[k] /= sum
	}
	return z
}

// draw returns a rank, 0 the most likely.
func (z *zipf) draw(r *rand.Rand) int {
	u := r.Float64()
	k := sort.SearchFloat64s(z.cdf, u)
	return min(k, len(z.cdf)-1)
}

// top returns the probability of rank 0.
func (z *zipf) top() float64 { return z.cdf[0] }

// zipfExponent returns the exponent s for which rank 0 of n has probability
// p (clamped to [0, 3]): 1/H(n, s) = p, found by bisection. A smaller p than
// 1/n cannot be had (s = 0 is uniform) and gives 0.
func zipfExponent(n int, p float64) float64 {
	if p <= 1/float64(n) {
		return 0
	}
	harmonic := func(s float64) float64 {
		var h float64
		for k := 1; k <= n; k++ {
			h += math.Pow(float64(k), -s)
		}
		return h
	}
	lo, hi := 0.0, 3.0
	for range 50 {
		mid := (lo + hi) / 2
		if 1/harmonic(mid) < p {
			lo = mid // too flat: rank 0 too unlikely
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// idAt returns an ID as store.NewID makes them (a ULID: 48-bit millisecond
// time, 80 random bits) for the time t, with entropy from r: IDs of later
// milliseconds sort after those of earlier ones, as the app's do.
func idAt(t time.Time, r *rand.Rand) ulid.ULID {
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(t)) // fails only past the year 10889
	for i := 6; i < 16; i++ {
		id[i] = byte(r.Uint32())
	}
	return id
}

// mix is splitmix64: a cheap, well-spread hash of a key, so that values
// derived from a row (a follow's time, a like's time) need not be stored.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }
