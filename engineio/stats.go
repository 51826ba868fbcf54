package engineio

import (
	"sync"
	"sync/atomic"
)

// Stats counts what a server does; its methods are safe for concurrent use.
type Stats struct {
	polling, websocket atomic.Int64 // sessions open, by transport
	opens, upgrades    atomic.Uint64
	overflows          atomic.Uint64

	mu       sync.Mutex
	refusals map[int]uint64    // by HTTP status
	closes   map[string]uint64 // by reason
}

// StatsSnapshot is a copy of a server's counters.
type StatsSnapshot struct {
	// Polling and WebSocket are the sessions open now, by transport.
	Polling, WebSocket int64
	// Opened counts sessions opened; Upgrades, polling sessions upgraded.
	Opened, Upgrades uint64
	// Overflows counts sessions whose send queue overflowed (slow consumers).
	Overflows uint64
	// Refused counts refused requests by HTTP status (400, 403, 413, 503).
	Refused map[int]uint64
	// Closed counts closed sessions by reason.
	Closed map[string]uint64
}

func (st *Stats) opened(websocket bool) {
	st.opens.Add(1)
	if websocket {
		st.websocket.Add(1)
	} else {
		st.polling.Add(1)
	}
}

func (st *Stats) upgraded() {
	st.upgrades.Add(1)
	st.polling.Add(-1)
	st.websocket.Add(1)
}

func (st *Stats) finished(websocket bool) {
	if websocket {
		st.websocket.Add(-1)
	} else {
		st.polling.Add(-1)
	}
}

func (st *Stats) refused(status int) {
	st.mu.Lock()
	if st.refusals == nil {
		st.refusals = map[int]uint64{}
	}
	st.refusals[status]++
	st.mu.Unlock()
}

func (st *Stats) closed(reason string) {
	st.mu.Lock()
	if st.closes == nil {
		st.closes = map[string]uint64{}
	}
	st.closes[reason]++
	st.mu.Unlock()
}

func (st *Stats) snapshot() StatsSnapshot {
	out := StatsSnapshot{
		Polling:   st.polling.Load(),
		WebSocket: st.websocket.Load(),
		Opened:    st.opens.Load(),
		Upgrades:  st.upgrades.Load(),
		Overflows: st.overflows.Load(),
		Refused:   map[int]uint64{},
		Closed:    map[string]uint64{},
	}
	st.mu.Lock()
	for k, v := range st.refusals {
		out.Refused[k] = v
	}
	for k, v := range st.closes {
		out.Closed[k] = v
	}
	st.mu.Unlock()
	return out
}
