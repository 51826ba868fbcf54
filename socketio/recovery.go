package socketio

import (
	"slices"
	"strconv"
	"time"

	"github.com/chatio/socketio-chat/engineio"
)

// recoveryLog is a namespace's connection state recovery: the broadcasts
// of the last window, each with its offset, and the sessions of the
// sockets that disconnected in that window. It is guarded by the server's
// order lock, which broadcasts and joins take too: a recovered socket gets
// the logged broadcasts after its offset and is made a member under that
// lock, so every broadcast reaches it exactly once, from the log or live.
type recoveryLog struct {
	window   time.Duration
	seq      uint64
	packets  []loggedPacket // by increasing seq
	sessions map[string]*savedSession
	swept    time.Time
}

// loggedPacket is a broadcast kept for recovery: its recipients' filter
// and its encoding, offset included (JSON; msgpack made from it when a
// msgpack client recovers, and kept).
type loggedPacket struct {
	seq  uint64
	at   time.Time
	opts BroadcastOptions
	msgs []engineio.Message
	mp   []engineio.Message
}

// savedSession is what a disconnected socket leaves for its recovery.
type savedSession struct {
	sid   string
	rooms []string // its own room included
	data  any
	at    time.Time
}

func newRecoveryLog(window time.Duration) *recoveryLog {
	return &recoveryLog{
		window: window,
		// Offsets of a new process start after those of an earlier one.
		seq:      uint64(time.Now().UnixMilli()) << 16,
		sessions: make(map[string]*savedSession),
	}
}

// nextLocked returns the offset of the next broadcast, as the string sent
// to clients.
func (l *recoveryLog) nextLocked() (uint64, string) {
	l.seq++
	return l.seq, strconv.FormatUint(l.seq, 36)
}

func parseOffset(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 36, 64)
	return n, err == nil
}

// appendLocked logs a broadcast and drops what is older than the window.
func (l *recoveryLog) appendLocked(seq uint64, opts BroadcastOptions, msgs []engineio.Message) {
	now := time.Now()
	l.packets = append(l.packets, loggedPacket{seq: seq, at: now, opts: opts, msgs: msgs})
	l.sweepLocked(now)
}

// sweepLocked forgets the packets and sessions older than the window; the
// sessions at most once a second.
func (l *recoveryLog) sweepLocked(now time.Time) {
	threshold := now.Add(-l.window)
	i := 0
	for i < len(l.packets) && l.packets[i].at.Before(threshold) {
		i++
	}
	if i > 0 {
		clear(l.packets[:i])
		l.packets = l.packets[i:]
		if cap(l.packets) > 1024 && len(l.packets) < cap(l.packets)/4 {
			l.packets = slices.Clone(l.packets)
		}
	}
	if now.Sub(l.swept) < time.Second {
		return
	}
	l.swept = now
	for pid, s := range l.sessions {
		if s.at.Before(threshold) {
			delete(l.sessions, pid)
		}
	}
}

// persistLocked saves the session of a socket that disconnects.
func (l *recoveryLog) persistLocked(s *Socket) {
	if s.pid() == "" {
		return
	}
	now := time.Now()
	l.sweepLocked(now)
	l.sessions[s.pid()] = &savedSession{
		sid:   s.id,
		rooms: append([]string{s.id}, s.rooms...),
		data:  s.Data(),
		at:    now,
	}
}

// indexLocked finds the logged packet with offset; ok is false when it
// is not (or no longer) in the log.
func (l *recoveryLog) indexLocked(offset string) (int, bool) {
	seq, ok := parseOffset(offset)
	if !ok {
		return 0, false
	}
	i, found := slices.BinarySearchFunc(l.packets, seq, func(p loggedPacket, seq uint64) int {
		switch {
		case p.seq < seq:
			return -1
		case p.seq > seq:
			return 1
		}
		return 0
	})
	return i, found
}

// usableLocked returns the session pid if it can be recovered from offset.
func (l *recoveryLog) usableLocked(pid, offset string) *savedSession {
	s := l.sessions[pid]
	if s == nil {
		return nil
	}
	if time.Since(s.at) > l.window {
		delete(l.sessions, pid)
		return nil
	}
	if _, ok := l.indexLocked(offset); !ok {
		return nil
	}
	return s
}

// takeLocked takes the session pid and returns the packets it missed after
// offset, in order, in wire format k.
func (l *recoveryLog) takeLocked(pid, offset string, k parserKind) (*savedSession, [][]engineio.Message, bool) {
	s := l.usableLocked(pid, offset)
	if s == nil {
		return nil, nil, false
	}
	delete(l.sessions, pid)
	i, _ := l.indexLocked(offset)
	var missed [][]engineio.Message
	for j := range l.packets[i+1:] {
		p := &l.packets[i+1+j]
		if !p.opts.includes(s.rooms) {
			continue
		}
		if k == kindMsgpack {
			if p.mp == nil {
				p.mp = transcodeLogged(p.msgs)
			}
			if p.mp != nil {
				missed = append(missed, p.mp)
			}
			continue
		}
		missed = append(missed, p.msgs)
	}
	return s, missed, true
}

// includes reports whether a socket in rooms was a recipient of a
// broadcast with these options (Node's shouldIncludePacket).
func (o BroadcastOptions) includes(rooms []string) bool {
	included := len(o.Rooms) == 0
	for _, r := range rooms {
		if slices.Contains(o.Except, r) {
			return false
		}
		if !included && slices.Contains(o.Rooms, r) {
			included = true
		}
	}
	return included
}
