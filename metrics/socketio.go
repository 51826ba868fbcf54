package metrics

import (
	"errors"
	"slices"
	"time"

	"github.com/chatio/socketio-chat/socketio"
	"github.com/prometheus/client_golang/prometheus"
)

// Instrument exports srv: its hooks feed the socket_io_* and socketio_*
// metrics, and collectors read its engine's counters at each scrape. Call
// it once, before clients connect; later calls do nothing.
func (m *Metrics) Instrument(srv *socketio.Server) {
	m.instrumented.Do(func() {
		m.reg.MustRegister(&engineCollector{srv: srv})
		srv.AddHooks(&socketio.Hooks{
			Connect:            m.onConnect,
			ConnectError:       m.onConnectError,
			Disconnect:         m.onDisconnect,
			EventReceived:      m.onEventReceived,
			EventSent:          m.onEventSent,
			BroadcastDelivered: m.onDelivered,
		})
	})
}

// nsMetrics are the cached counters of one namespace.
type nsMetrics struct {
	name                        string
	connect, disconnect, errors prometheus.Counter
	deliveries                  prometheus.Counter
	fanout                      prometheus.Observer
	received                    cowMap[string, *eventIn]
	sent                        cowMap[string, *eventOut]
	otherIn                     *eventIn
	otherOut                    *eventOut
}

type eventIn struct{ count, recieve, recv prometheus.Counter }

type eventOut struct{ count, transmit prometheus.Counter }

func (m *Metrics) ns(name string) *nsMetrics {
	return m.nsps.getOrAdd(name, func() *nsMetrics {
		n := &nsMetrics{
			name:       name,
			connect:    m.connectTotal.WithLabelValues(name),
			disconnect: m.disconnectTotal.WithLabelValues(name),
			errors:     m.errorsTotal.WithLabelValues(name),
			deliveries: m.deliveries.WithLabelValues(name),
			fanout:     m.fanout.WithLabelValues(name),
		}
		n.otherIn = m.newEventIn(OtherEvent, name)
		n.otherOut = m.newEventOut(OtherEvent, name)
		return n
	})
}

func (m *Metrics) newEventIn(event, nsp string) *eventIn {
	return &eventIn{
		count:   m.eventsReceived.WithLabelValues(event, nsp),
		recieve: m.recieveBytes.WithLabelValues(event, nsp),
		recv:    m.recvBytes.WithLabelValues(event, nsp),
	}
}

func (m *Metrics) newEventOut(event, nsp string) *eventOut {
	return &eventOut{
		count:    m.eventsSent.WithLabelValues(event, nsp),
		transmit: m.transmitBytes.WithLabelValues(event, nsp),
	}
}

// in returns the counters of an event a client sent: its own when its
// name is one of Options.Events, else _other's.
func (m *Metrics) in(n *nsMetrics, event string) *eventIn {
	if e, ok := n.received.load(event); ok {
		return e
	}
	if !slices.Contains(m.opts.Events, event) {
		return n.otherIn
	}
	return n.received.getOrAdd(event, func() *eventIn { return m.newEventIn(event, n.name) })
}

// out returns the counters of an event the server sent: its own when its
// name is one of Options.Events or among the first MaxSentEvents others.
func (m *Metrics) out(n *nsMetrics, event string) *eventOut {
	if e, ok := n.sent.load(event); ok {
		return e
	}
	if !slices.Contains(m.opts.Events, event) {
		if m.sent.Add(1) > int64(m.opts.MaxSentEvents) {
			m.sent.Add(-1)
			return n.otherOut
		}
	}
	return n.sent.getOrAdd(event, func() *eventOut { return m.newEventOut(event, n.name) })
}

func (m *Metrics) onConnect(s *socketio.Socket) { m.ns(s.Namespace().Name()).connect.Inc() }

func (m *Metrics) onConnectError(nsp *socketio.Namespace, _ error) {
	if nsp == nil {
		m.errorsTotal.WithLabelValues(OtherEvent).Inc() // a namespace that does not exist: the client's name
		return
	}
	m.ns(nsp.Name()).errors.Inc()
}

func (m *Metrics) onDisconnect(s *socketio.Socket, reason string, cause error) {
	n := m.ns(s.Namespace().Name())
	n.disconnect.Inc()
	if errors.Is(cause, socketio.ErrSlowConsumer) {
		reason = "slow consumer"
	}
	m.disconnects.WithLabelValues(n.name, reason).Inc()
}

func (m *Metrics) onEventReceived(s *socketio.Socket, event string, size int) {
	e := m.in(m.ns(s.Namespace().Name()), event)
	e.count.Inc()
	e.recieve.Add(float64(size))
	e.recv.Add(float64(size))
}

func (m *Metrics) onEventSent(nsp *socketio.Namespace, event string, size, recipients int) {
	n := m.ns(nsp.Name())
	e := m.out(n, event)
	e.count.Inc()
	e.transmit.Add(float64(size))
	if recipients > 0 {
		n.deliveries.Add(float64(recipients))
	}
}

func (m *Metrics) onDelivered(nsp *socketio.Namespace, recipients int, elapsed time.Duration) {
	if recipients == 0 {
		return // nobody to wait for: not a fan-out
	}
	m.ns(nsp.Name()).fanout.Observe(elapsed.Seconds())
}
