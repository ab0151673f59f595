// Package schedule is the tick loop that turns policies into work: at every
// tick it queues the backups that fell due (each due time of an instance
// once, across restarts and processes sharing the store, through the
// job's idempotency key) and expires the recovery points whose retention
// ended (their data leaves the repository with the prune that follows).
// The vault service decides what is due; this package only keeps time.
package schedule

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/pgvault/pgvault/internal/vault"
)

// DefaultInterval is how often the loop ticks unless told otherwise.
const DefaultInterval = 30 * time.Second

// Config configures Run.
type Config struct {
	Service *vault.Service
	// Interval between ticks (default DefaultInterval): a backup starts at
	// most this long after it is due.
	Interval time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Result is what one tick did.
type Result struct {
	Queued  int // scheduled backup jobs queued
	Expired int // recovery points expired
}

// Tick queues the backups due at now and expires the recovery points
// whose expiry time is at or before now. It does both even when one fails,
// and returns the errors of both.
func Tick(ctx context.Context, svc *vault.Service, now time.Time) (Result, error) {
	var r Result
	var qerr, eerr error
	r.Queued, qerr = svc.QueueDueBackups(ctx, now)
	r.Expired, eerr = svc.ExpireRecoveryPoints(ctx, now)
	return r, errors.Join(qerr, eerr)
}

// Run ticks at once and then every Interval until ctx is done.
func Run(ctx context.Context, cfg Config) {
	interval := cmp.Or(cfg.Interval, DefaultInterval)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	log := cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		res, err := Tick(ctx, cfg.Service, now())
		if err != nil && ctx.Err() == nil {
			log.Error("the schedule tick failed", "err", err)
		}
		level := slog.LevelDebug // an idle tick
		if res.Queued > 0 || res.Expired > 0 {
			level = slog.LevelInfo
		}
		log.Log(ctx, level, "schedule tick", "queued", res.Queued, "expired", res.Expired)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
