package ratelimit

import (
	"context"
	"fmt"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// redisLimiter is the Limiter shared by all instances, with GCRA run as a
// Lua script in Redis by redis_rate (keys are prefixed with "rate:").
type redisLimiter struct {
	lim   *redis_rate.Limiter
	close func() error // nil when the client belongs to the caller
}

var _ Limiter = (*redisLimiter)(nil)

// NewRedis returns a Limiter whose budgets live in Redis, so every instance
// using the same Redis shares them. Time is Redis's clock. Close leaves
// client open: it belongs to the caller.
func NewRedis(client *redis.Client) Limiter {
	return &redisLimiter{lim: redis_rate.NewLimiter(client)}
}

// Allow implements Limiter.
func (r *redisLimiter) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	if _, err := l.interval(); err != nil {
		return Result{}, err
	}
	res, err := r.lim.Allow(ctx, key, redis_rate.Limit{Rate: l.Rate, Period: l.Period, Burst: l.Burst})
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: redis allow: %w", err)
	}
	out := Result{Allowed: res.Allowed > 0, Limit: l, Remaining: res.Remaining, ResetAfter: max(res.ResetAfter, 0)}
	if !out.Allowed {
		out.RetryAfter = max(res.RetryAfter, 0)
	}
	return out, nil
}

// Close closes the Redis client if Open created it.
func (r *redisLimiter) Close() error {
	if r.close == nil {
		return nil
	}
	if err := r.close(); err != nil {
		return fmt.Errorf("ratelimit: close redis: %w", err)
	}
	return nil
}
