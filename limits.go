package main

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// eventLimiter is one connection's token bucket for incoming events: rate
// tokens a second, at most burst saved up. It is used only by its
// connection's rawDecoder, on the connection's reader goroutine.
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

// limitEvents acts on the events the connection's rawDecoder refused for
// going over cfg.EventRate (bursts of cfg.EventBurst): they are dropped, the
// first of a streak is logged, and a client that goes on flooding (another
// burst's worth of refused events with no quiet second between them) is
// disconnected. It runs on the socket's event queue, in order with the
// accepted events.
func (s *chatServer) limitEvents(client *socket.Socket, remote string) {
	var (
		dropped     int // events refused in the current streak
		lastRefused time.Time
	)
	client.Use(func(event []any, next func(error)) {
		now := time.Now()
		if name, _ := event[0].(string); name != limitedEvent {
			if now.Sub(lastRefused) > time.Second {
				dropped = 0 // the streak is over
			}
			next(nil)
			return
		}
		lastRefused = now
		dropped++
		switch dropped {
		case 1:
			s.log.Warn("dropping events over the rate limit", "sid", client.Id(), "remote", remote,
				"rate", s.cfg.EventRate, "burst", s.cfg.EventBurst, "reason", "rate limit")
		case s.cfg.EventBurst:
			s.log.Warn("disconnecting flooding client", "sid", client.Id(), "remote", remote,
				"dropped", dropped, "reason", "flood")
			// After the events accepted before, which wait in the same queue.
			client.Enqueue(func() { client.Disconnect(true) })
		}
	})
}

// messageSize is the size of a chat message as it travels: the bytes of its
// JSON text (quotes included for a string), or of its binary data.
func messageSize(m any) int {
	switch v := m.(type) {
	case rawJSON:
		return len(v)
	case []byte:
		return len(v)
	case types.BufferInterface:
		return v.Len()
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return 0 // holds binary; the transport's maxHttpBufferSize bounded it
		}
		return len(b)
	}
}

// boundPollingBacklog disconnects a polling client whose undelivered packets
// exceed the send queue limits: the engine keeps them until the client's next
// GET, so a client that stops polling would otherwise hold them until the
// heartbeat gives up. WebSocket transports bound their own queue.
func (s *chatServer) boundPollingBacklog(client *socket.Socket, remote string) {
	conn := client.Conn()
	if conn.Transport().Name() != "polling" {
		return
	}
	var (
		mu      sync.Mutex
		packets int
		bytes   int64
		tripped bool
	)
	onCreate := func(args ...any) {
		p, _ := args[0].(*packet.Packet)
		var n int64
		if b, ok := p.Data.(types.BufferInterface); ok && b != nil {
			n = int64(b.Len())
		}
		mu.Lock()
		packets++
		bytes += n
		over := !tripped && (packets > s.cfg.SendQueuePackets || bytes > s.cfg.SendQueueBytes)
		tripped = tripped || over
		queued, size := packets, bytes
		mu.Unlock()
		if over {
			s.log.Warn("disconnecting slow client: send queue full", "sid", client.Id(), "remote", remote,
				"transport", "polling", "queued_packets", queued, "queued_bytes", size, "reason", "slow consumer")
			go conn.Close(true) // discard the backlog; not inline: we are inside the engine's send path
		}
	}
	onFlush := func(...any) {
		mu.Lock()
		packets, bytes = 0, 0
		mu.Unlock()
	}
	_ = conn.On("packetCreate", onCreate)
	_ = conn.On("flush", onFlush)
	_ = conn.Once("upgrade", func(...any) {
		conn.RemoveListener("packetCreate", onCreate)
		conn.RemoveListener("flush", onFlush)
	})
}
