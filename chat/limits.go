package chat

import (
	"errors"
	"time"

	"github.com/chatio/socketio-chat/socketio"
)

// eventLimiter is one connection's token bucket for incoming events: rate
// tokens a second, at most burst saved up (the server's configuration,
// given to allow). It is used only by its socket's event middleware, which
// runs one event at a time. It is 16 bytes of every connection: the time
// of the last refill is kept as a monotonic offset, not a time.Time.
type eventLimiter struct {
	tokens float64
	last   time.Duration // since clockEpoch
}

// clockEpoch is the origin of the limiter's times.
var clockEpoch = time.Now()

func newEventLimiter(burst int, now time.Time) eventLimiter {
	return eventLimiter{tokens: float64(burst), last: now.Sub(clockEpoch)}
}

// allow takes a token if one is left.
func (l *eventLimiter) allow(now time.Time, rate float64, burst int) bool {
	t := now.Sub(clockEpoch)
	if elapsed := (t - l.last).Seconds(); elapsed > 0 {
		l.tokens = min(float64(burst), l.tokens+elapsed*rate)
		l.last = t
	}
	if l.tokens >= 1 {
		l.tokens--
		return true
	}
	return false
}

// errRateLimited is what the limiter's middleware refuses an event with.
var errRateLimited = errors.New("event over the rate limit")

// limit is the connection's event middleware: it drops the events a
// client sends over cfg.EventRate (bursts of cfg.EventBurst): the first of
// a streak is logged, and a client that goes on flooding (another burst's
// worth of refused events with no quiet second between them) is
// disconnected. It judges events as they arrive (the core handles a
// socket's events on arrival, on the goroutine that read them); its state
// is its own, out of reach of what a client sends.
func (c *conn) limit(*socketio.Event) error {
	s := c.s
	now := time.Now()
	if c.lim.allow(now, s.cfg.EventRate, s.cfg.EventBurst) {
		if now.Sub(clockEpoch)-c.lastRefused > time.Second {
			c.dropped = 0 // the streak is over
		}
		return nil
	}
	c.lastRefused = now.Sub(clockEpoch)
	c.dropped++
	s.metrics.EventDropped("rate_limit")
	switch int(c.dropped) {
	case 1:
		s.log.Warn("dropping events over the rate limit", "sid", c.client.ID(), "transport", c.client.Conn().Transport(), "remote", c.remote(),
			"rate", s.cfg.EventRate, "burst", s.cfg.EventBurst, "reason", "rate limit")
	case s.cfg.EventBurst:
		s.log.Warn("disconnecting flooding client", "sid", c.client.ID(), "transport", c.client.Conn().Transport(), "remote", c.remote(),
			"dropped", c.dropped, "reason", "flood")
		c.client.Disconnect(true)
	}
	return errRateLimited
}
