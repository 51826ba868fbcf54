package socketio

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// addHandler appends a handler of event and returns its remove function.
func (s *Socket) addHandler(event string, fn func(*Event), once bool) func() {
	id := listenerIDs.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers = append(s.handlers, handler{event: event, fn: fn, id: id, once: once})
	return func() { s.removeHandler(id) }
}

// removeHandler removes the handler with id, if it is still there. The
// slice is copied: dispatch may be iterating over the old one.
func (s *Socket) removeHandler(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers = slices.DeleteFunc(slices.Clone(s.handlers), func(h handler) bool { return h.id == id })
}

// takeHandlersLocked returns the handlers of event, in the order they were
// added, and removes the Once ones among them. s.mu is held.
func (s *Socket) takeHandlersLocked(event string) []func(*Event) {
	var fns []func(*Event)
	once := false
	for _, h := range s.handlers {
		if h.event == event {
			fns = append(fns, h.fn)
			once = once || h.once
		}
	}
	if once {
		s.handlers = slices.DeleteFunc(slices.Clone(s.handlers), func(h handler) bool { return h.once && h.event == event })
	}
	return fns
}

// Once adds a handler for the next event only: it is removed before it
// runs. It returns a function that removes it before then.
func (s *Socket) Once(event string, fn func(*Event)) (remove func()) {
	return s.addHandler(event, fn, true)
}

// Off removes every handler of event (Node's socket.off(event) and
// removeAllListeners(event)). A single handler is removed with the function
// On or Once returned: Go funcs cannot be compared, so Off cannot find one.
func (s *Socket) Off(event string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers = slices.DeleteFunc(slices.Clone(s.handlers), func(h handler) bool { return h.event == event })
}

// OffAny removes every OnAny handler.
func (s *Socket) OffAny() { s.updateAnys(func(a *anyListeners) { a.in = nil }) }

// OnAnyOutgoing adds a handler called for every event the server emits to
// this socket with Socket.Emit or EmitWithAck (not for broadcasts, as in
// Node), with its name and arguments, before it is queued, on the emitter's
// goroutine. It returns a function that removes it.
func (s *Socket) OnAnyOutgoing(fn func(event string, args []Arg)) (remove func()) {
	id := listenerIDs.Add(1)
	s.updateAnys(func(a *anyListeners) { a.out = append(slices.Clip(a.out), outgoingHandler{id, fn}) })
	return func() {
		s.updateAnys(func(a *anyListeners) {
			a.out = slices.DeleteFunc(slices.Clone(a.out), func(h outgoingHandler) bool { return h.id == id })
		})
	}
}

// OffAnyOutgoing removes every OnAnyOutgoing handler.
func (s *Socket) OffAnyOutgoing() { s.updateAnys(func(a *anyListeners) { a.out = nil }) }

// notifyOutgoing runs the OnAnyOutgoing handlers, with no lock held.
func (s *Socket) notifyOutgoing(event string, args []Arg) {
	s.mu.Lock()
	a := s.anys
	s.mu.Unlock()
	if a == nil {
		return
	}
	for _, h := range a.out {
		h.fn(event, args)
	}
}

// anyListeners are a socket's OnAny and OnAnyOutgoing handlers, apart from
// Socket so that the sockets without any (most) do not pay for them.
type anyListeners struct {
	in  []anyHandler
	out []outgoingHandler
}

// listenerIDs numbers the handlers, for their remove functions.
var listenerIDs atomic.Uint64

// updateAnys replaces s.anys by a copy changed by fn (readers keep the
// one they took).
func (s *Socket) updateAnys(fn func(*anyListeners)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var a anyListeners
	if s.anys != nil {
		a = *s.anys
	}
	fn(&a)
	s.anys = &a
}

// Args turns Go values into Args (see ToArg), for EmitWithAck:
//
//	args, err := socketio.Args("hello", 42)
//	resp, err := so.EmitWithAck(ctx, "greet", args...)
func Args(values ...any) ([]Arg, error) {
	out := make([]Arg, len(values))
	for i, v := range values {
		a, err := ToArg(v)
		if err != nil {
			return nil, fmt.Errorf("socketio: argument %d: %w", i, err)
		}
		out[i] = a
	}
	return out, nil
}

// EmitWithAck sends event to the client, asks it to acknowledge, and waits
// for its answer: the client's arguments. The arguments are Args (see Args,
// ToArg, Binary), so that a callback passed by mistake is a compile error.
// It fails with ErrDisconnected when the socket disconnects first, with
// ctx's error when ctx ends first; when that is ctx's deadline, the error
// is also ErrAckTimeout (errors.Is). It must not be called from the
// socket's own handlers: the answer is handled on the same goroutine, so it
// would wait for ctx (call it from another goroutine, or use Emit with an
// AckFunc).
func (s *Socket) EmitWithAck(ctx context.Context, event string, args ...Arg) ([]Arg, error) {
	return s.emitWithAck(ctx, false, event, args)
}

func (s *Socket) emitWithAck(ctx context.Context, noCompress bool, event string, args []Arg) ([]Arg, error) {
	type result struct {
		args []Arg
		err  error
	}
	ch := make(chan result, 1)
	id, err := s.emitArgs(0, noCompress, event, args, func(a []Arg, err error) { ch <- result{a, err} })
	forget := func() {
		s.mu.Lock()
		p := s.acks[id]
		delete(s.acks, id)
		s.mu.Unlock()
		if p != nil && p.timer != nil {
			p.timer.Stop()
		}
	}
	if err != nil {
		if id >= 0 {
			forget()
		}
		if !s.Connected() {
			return nil, ErrDisconnected // its session may be closed already
		}
		return nil, err
	}
	if !s.Connected() {
		// Disconnected before the ack was registered (its disconnection
		// failed the acks it had, not this one) or after (it failed it).
		select {
		case r := <-ch:
			return r.args, r.err
		default:
			forget()
			return nil, ErrDisconnected
		}
	}
	select {
	case r := <-ch:
		return r.args, r.err
	case <-ctx.Done():
		forget()
		return nil, ctxAckError(ctx)
	}
}

// EmitWithAck is Socket.EmitWithAck with the emitter's timeout: the wait
// ends with ErrAckTimeout after it, or when ctx ends.
func (e *Emitter) EmitWithAck(ctx context.Context, event string, args ...Arg) ([]Arg, error) {
	if e.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.timeout)
		defer cancel()
	}
	return e.s.emitWithAck(ctx, e.noCompress, event, args)
}

// ctxAckError is the error of an acknowledgement whose wait ctx ended.
func ctxAckError(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrAckTimeout, err)
	}
	return err
}

// EmitWithAck broadcasts event to the selected sockets, every recipient
// asked to acknowledge, and returns their responses (one Arg each, the
// first argument they acknowledged with, in the order they came), on every
// node. The wait is bounded by Timeout, or else by ctx's deadline; one of
// them is required. When it ends before every recipient answered, the
// responses received so far come with ErrAckTimeout; when ctx is cancelled
// first, with ctx's error.
func (b *BroadcastOperator) EmitWithAck(ctx context.Context, event string, args ...Arg) ([]Arg, error) {
	op := b
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); op.opts.Timeout <= 0 || d < op.opts.Timeout {
			if d <= 0 {
				return nil, ctxAckError(ctx)
			}
			op = op.Timeout(d)
		}
	}
	if reservedEvents[event] || event == "connection" {
		return nil, fmt.Errorf("socketio: %q is a reserved event name", event)
	}
	type result struct {
		args []Arg
		err  error
	}
	ch := make(chan result, 1)
	if err := op.emitWithAck(event, slices.Clone(args), func(a []Arg, err error) { ch <- result{a, err} }); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.args, r.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The timeout (at most ctx's deadline) ends the wait now or at
			// once, with the responses received.
			r := <-ch
			return r.args, r.err
		}
		return nil, ctx.Err()
	}
}

// MustArg is ToArg for values known to be valid (literals): it panics on
// an error, as regexp.MustCompile does.
func MustArg(v any) Arg {
	a, err := ToArg(v)
	if err != nil {
		panic(err)
	}
	return a
}

// EmitWithAck broadcasts event to every socket of the namespace and waits
// for their acknowledgements (see BroadcastOperator.EmitWithAck).
func (n *Namespace) EmitWithAck(ctx context.Context, event string, args ...Arg) ([]Arg, error) {
	return n.op().EmitWithAck(ctx, event, args...)
}

// EmitWithAck broadcasts event to every socket of the main namespace and
// waits for their acknowledgements (see BroadcastOperator.EmitWithAck).
func (s *Server) EmitWithAck(ctx context.Context, event string, args ...Arg) ([]Arg, error) {
	return s.Sockets().EmitWithAck(ctx, event, args...)
}
