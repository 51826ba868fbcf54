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
	shed               atomic.Uint64
	msgsIn, bytesIn    atomic.Uint64
	msgsOut, bytesOut  atomic.Uint64

	kaTaken, kaGiven atomic.Uint64
	kaRequests       atomic.Uint64

	deflateNegotiated         atomic.Uint64
	deflatedMsgs              atomic.Uint64
	deflatedIn, deflatedBytes atomic.Uint64

	mu       sync.Mutex
	refusals map[Refusal]uint64 // by HTTP status and reason
	closes   map[string]uint64  // by reason
}

// Refusal is a kind of refused request: its HTTP status and a reason from a
// small fixed set (see RefusalReasons).
type Refusal struct {
	Status int    // the HTTP status of the answer
	Reason string // one of RefusalReasons
}

// RefusalReasons are the reasons a Refusal can have: the Engine.IO error
// of the answer, or the limit that refused it.
var RefusalReasons = []string{
	"transport_unknown", "session_id_unknown", "bad_handshake_method", "bad_request",
	"forbidden", "unsupported_protocol_version", "payload_too_large", "too_many_connections",
}

// refusalReason names a refusal by its status and Engine.IO error code.
func refusalReason(status, code int) string {
	switch status {
	case 403:
		return "forbidden"
	case 413:
		return "payload_too_large"
	case 503:
		return "too_many_connections"
	}
	if code >= 0 && code < len(RefusalReasons) {
		return RefusalReasons[code] // the first six follow the error codes
	}
	return "bad_request"
}

// StatsSnapshot is a copy of a server's counters.
type StatsSnapshot struct {
	// Polling and WebSocket are the sessions open now, by transport.
	Polling, WebSocket int64
	// Opened counts sessions opened; Upgrades, polling sessions upgraded.
	Opened, Upgrades uint64
	// Overflows counts sessions whose send queue overflowed (slow consumers),
	// their own or the process's (Options.QueueBudget).
	Overflows uint64
	// Shed counts the sessions of Overflows cut off because the queues of
	// all sessions together passed Options.QueueBudget.
	Shed uint64
	// Refused counts refused requests by HTTP status (400, 403, 413, 503).
	Refused map[int]uint64
	// Refusals counts refused requests by status and reason.
	Refusals map[Refusal]uint64
	// MessagesIn and BytesIn count the MESSAGE packets received and their
	// payload bytes; MessagesOut and BytesOut those sent to clients,
	// counted when a WebSocket flush or a poll's response takes them. The
	// engine's own packets (PING, PONG, NOOP, OPEN, CLOSE) are not counted.
	MessagesIn, BytesIn, MessagesOut, BytesOut uint64
	// DeflateNegotiated counts the WebSockets that negotiated
	// permessage-deflate (Options.PerMessageDeflate). DeflatedMessages
	// counts the messages sent compressed, DeflatedFrom their bytes before
	// compression and DeflatedTo after (a broadcast is counted once per
	// recipient, though compressed once).
	DeflateNegotiated, DeflatedMessages, DeflatedFrom, DeflatedTo uint64
	// Closed counts closed sessions by reason.
	Closed map[string]uint64
	// KeepAliveConns is the number of keep-alive connections whose long
	// polls the engine serves itself now (Options.KeepAlive);
	// KeepAliveTaken counts those taken over from net/http, KeepAliveGiven
	// those given back for a request the fast path does not serve.
	KeepAliveConns                 int64
	KeepAliveTaken, KeepAliveGiven uint64
	// KeepAliveRequests counts the polling requests served on the fast
	// path (net/http's are not counted).
	KeepAliveRequests uint64
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

func (st *Stats) refused(status, code int) {
	st.mu.Lock()
	if st.refusals == nil {
		st.refusals = map[Refusal]uint64{}
	}
	st.refusals[Refusal{status, refusalReason(status, code)}]++
	st.mu.Unlock()
}

func (st *Stats) received(n int) {
	st.msgsIn.Add(1)
	st.bytesIn.Add(uint64(n))
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
		Polling:     st.polling.Load(),
		WebSocket:   st.websocket.Load(),
		Opened:      st.opens.Load(),
		Upgrades:    st.upgrades.Load(),
		Overflows:   st.overflows.Load(),
		Shed:        st.shed.Load(),
		MessagesIn:  st.msgsIn.Load(),
		BytesIn:     st.bytesIn.Load(),
		MessagesOut: st.msgsOut.Load(),
		BytesOut:    st.bytesOut.Load(),

		DeflateNegotiated: st.deflateNegotiated.Load(),
		DeflatedMessages:  st.deflatedMsgs.Load(),
		DeflatedFrom:      st.deflatedIn.Load(),
		DeflatedTo:        st.deflatedBytes.Load(),
		KeepAliveTaken:    st.kaTaken.Load(),
		KeepAliveGiven:    st.kaGiven.Load(),
		KeepAliveRequests: st.kaRequests.Load(),
		Refused:           map[int]uint64{},
		Refusals:          map[Refusal]uint64{},
		Closed:            map[string]uint64{},
	}
	st.mu.Lock()
	for k, v := range st.refusals {
		out.Refused[k.Status] += v
		out.Refusals[k] = v
	}
	for k, v := range st.closes {
		out.Closed[k] = v
	}
	st.mu.Unlock()
	return out
}
