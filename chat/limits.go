package chat

import (
	"errors"
	"time"

	"github.com/chatio/socketio-chat/socketio"
)

// eventLimiter is one connection's token bucket for incoming events: rate
// tokens a second, at most burst saved up. It is used only by its socket's
// event middleware, which runs one event at a time.
type eventLimiter struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func newEventLimiter(rate float64, burst int, now time.Time) *eventLimiter {
	return &eventLimiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// allow takes a token if one is left.
func (l *eventLimiter) allow(now time.Time) bool {
	if elapsed := now.Sub(l.last).Seconds(); elapsed > 0 {
		l.tokens = min(l.burst, l.tokens+elapsed*l.rate)
		l.last = now
	}
	if l.tokens >= 1 {
		l.tokens--
		return true
	}
	return false
}

// errRateLimited is what the limiter's middleware refuses an event with.
var errRateLimited = errors.New("event over the rate limit")

// limitEvents drops the events a client sends over cfg.EventRate (bursts
// of cfg.EventBurst): the first of a streak is logged, and a client that
// goes on flooding (another burst's worth of refused events with no quiet
// second between them) is disconnected. The limiter is a middleware of the
// socket's, so it judges events as they arrive (the core handles a
// socket's events on arrival, on the goroutine that read them); its state
// is its own, out of reach of what a client sends.
func (s *Server) limitEvents(client *socketio.Socket, remote string) {
	lim := newEventLimiter(s.cfg.EventRate, s.cfg.EventBurst, time.Now())
	var (
		dropped     int // events refused in the current streak
		lastRefused time.Time
	)
	client.Use(func(*socketio.Event) error {
		now := time.Now()
		if lim.allow(now) {
			if now.Sub(lastRefused) > time.Second {
				dropped = 0 // the streak is over
			}
			return nil
		}
		lastRefused = now
		dropped++
		s.metrics.EventDropped("rate_limit")
		switch dropped {
		case 1:
			s.log.Warn("dropping events over the rate limit", "sid", client.ID(), "transport", client.Conn().Transport(), "remote", remote,
				"rate", s.cfg.EventRate, "burst", s.cfg.EventBurst, "reason", "rate limit")
		case s.cfg.EventBurst:
			s.log.Warn("disconnecting flooding client", "sid", client.ID(), "transport", client.Conn().Transport(), "remote", remote,
				"dropped", dropped, "reason", "flood")
			client.Disconnect(true)
		}
		return errRateLimited
	})
}
