package notepack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/chatio/socketio-chat/internal/jsontext"
)

// JSON → msgpack: an argument as a Node node would publish it. A Node node
// parses the client's JSON (JSON.parse), turns its placeholders back into
// Buffers, and notepack.io encodes the resulting value. The Encoder does
// the same in one step, from the JSON text:
//
//   - objects keep their key order, as JavaScript objects do: in insertion
//     order, except that keys that are array indices ("0", "1", …) come
//     first in ascending order, and a repeated key keeps its first place
//     with its last value (JSON.parse's rules);
//   - a number is the double JSON.parse reads; an integral one is written as
//     the smallest msgpack integer that holds it, any other as a float 64,
//     as notepack.io does (except that integers beyond the 64-bit range,
//     which notepack.io writes modulo 2^64, stay float 64);
//   - strings are UTF-8 (ill-formed raw bytes as U+FFFD, as Node reads the
//     client's text), lone surrogate escapes WTF-8 (see internal/jsontext);
//   - placeholders become msgpack bin with the attachment's bytes.

// maxDepth bounds the nesting of arrays and objects inside one argument, in
// both directions (socketio.MaxDepth, the same, counts the packet's array
// too).
const maxDepth = jsontext.MaxDepth

var errTooDeep = errors.New("nested too deeply")

// placeholderPrefix starts every placeholder in an Arg's JSON (see
// socketio.Arg); it cannot occur inside a JSON string.
const placeholderPrefix = `{"_placeholder":true,"num":`

// placeholderAt reports whether b[i:] starts with a placeholder for one
// of nbins attachments, and returns its number and the index after it.
func placeholderAt(b []byte, i, nbins int) (num, end int, ok bool) {
	if nbins == 0 || !bytes.HasPrefix(b[i:], []byte(placeholderPrefix)) {
		return 0, 0, false
	}
	j := i + len(placeholderPrefix)
	k := j
	for k < len(b) && b[k] >= '0' && b[k] <= '9' && k-j < 8 {
		k++
	}
	if k == j || k >= len(b) || b[k] != '}' || (b[j] == '0' && k-j > 1) {
		return 0, 0, false
	}
	n, _ := strconv.Atoi(string(b[j:k]))
	if n >= nbins {
		return 0, 0, false
	}
	return n, k + 1, true
}

// Encoder writes msgpack. Its buffers are reused from one message to the
// next; it is not safe for concurrent use.
type Encoder struct {
	Buf []byte

	// the argument being transcoded
	in     []byte
	i      int
	bins   [][]byte
	counts []int32 // children of each array and object, in document order
	ci     int

	members []span  // members of the objects being written (a stack)
	str     []byte  // a decoded string
	tmp     []byte  // an object being rebuilt
	order   []int32 // members of an object in JavaScript's order
}

type span struct{ start, keyEnd, end int }

// Writers of msgpack items, with the formats notepack.io chooses.

func (e *Encoder) Nil()        { e.Buf = append(e.Buf, 0xc0) }
func (e *Encoder) Bool(v bool) { e.Buf = append(e.Buf, 0xc2|b2u(v)) }

func b2u(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func (e *Encoder) ArrayHeader(n int) {
	switch {
	case n < 16:
		e.Buf = append(e.Buf, 0x90|byte(n))
	case n < 1<<16:
		e.Buf = append(e.Buf, 0xdc, byte(n>>8), byte(n))
	default:
		e.Buf = append(e.Buf, 0xdd)
		e.Buf = binary.BigEndian.AppendUint32(e.Buf, uint32(n))
	}
}

func AppendMapHeader(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x80|byte(n))
	case n < 1<<16:
		return append(dst, 0xde, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xdf)
		return binary.BigEndian.AppendUint32(dst, uint32(n))
	}
}

func (e *Encoder) MapHeader(n int) { e.Buf = AppendMapHeader(e.Buf, n) }

func (e *Encoder) StrHeader(n int) {
	switch {
	case n < 32:
		e.Buf = append(e.Buf, 0xa0|byte(n))
	case n < 1<<8:
		e.Buf = append(e.Buf, 0xd9, byte(n))
	case n < 1<<16:
		e.Buf = append(e.Buf, 0xda, byte(n>>8), byte(n))
	default:
		e.Buf = append(e.Buf, 0xdb)
		e.Buf = binary.BigEndian.AppendUint32(e.Buf, uint32(n))
	}
}

// string writes a Go string (WTF-8; anything else is normalized).
func (e *Encoder) String(s string) { e.bytesAsString([]byte(s)) }

func (e *Encoder) bytesAsString(b []byte) {
	if !utf8.Valid(b) {
		e.str = jsontext.AppendJSString(e.str[:0], b)
		b = e.str
	}
	e.StrHeader(len(b))
	e.Buf = append(e.Buf, b...)
}

func (e *Encoder) Bin(b []byte) {
	switch n := len(b); {
	case n < 1<<8:
		e.Buf = append(e.Buf, 0xc4, byte(n))
	case n < 1<<16:
		e.Buf = append(e.Buf, 0xc5, byte(n>>8), byte(n))
	default:
		e.Buf = append(e.Buf, 0xc6)
		e.Buf = binary.BigEndian.AppendUint32(e.Buf, uint32(n))
	}
	e.Buf = append(e.Buf, b...)
}

// number writes a JavaScript number as notepack.io does.
func (e *Encoder) Number(f float64) {
	switch {
	case f != math.Trunc(f) || math.IsInf(f, 0) || math.IsNaN(f):
	case f >= 0 && f < 1<<64:
		e.Uint(uint64(f))
		return
	case f < 0 && f >= -(1<<63):
		e.Int(int64(f))
		return
	}
	e.Buf = append(e.Buf, 0xcb)
	e.Buf = binary.BigEndian.AppendUint64(e.Buf, math.Float64bits(f))
}

func (e *Encoder) Uint(v uint64) {
	switch {
	case v < 0x80:
		e.Buf = append(e.Buf, byte(v))
	case v < 1<<8:
		e.Buf = append(e.Buf, 0xcc, byte(v))
	case v < 1<<16:
		e.Buf = append(e.Buf, 0xcd, byte(v>>8), byte(v))
	case v < 1<<32:
		e.Buf = append(e.Buf, 0xce)
		e.Buf = binary.BigEndian.AppendUint32(e.Buf, uint32(v))
	default:
		e.Buf = append(e.Buf, 0xcf)
		e.Buf = binary.BigEndian.AppendUint64(e.Buf, v)
	}
}

func (e *Encoder) Int(v int64) {
	switch {
	case v >= 0:
		e.Uint(uint64(v))
	case v >= -32:
		e.Buf = append(e.Buf, byte(v))
	case v >= -1<<7:
		e.Buf = append(e.Buf, 0xd0, byte(v))
	case v >= -1<<15:
		e.Buf = append(e.Buf, 0xd1, byte(v>>8), byte(v))
	case v >= -1<<31:
		e.Buf = append(e.Buf, 0xd2)
		e.Buf = binary.BigEndian.AppendUint32(e.Buf, uint32(v))
	default:
		e.Buf = append(e.Buf, 0xd3)
		e.Buf = binary.BigEndian.AppendUint64(e.Buf, uint64(v))
	}
}

// JSON transcodes the JSON value b, whose placeholders refer to bins.
func (e *Encoder) JSON(b []byte, bins [][]byte) error {
	e.in, e.i, e.bins = b, 0, bins
	e.counts, e.ci = e.counts[:0], 0
	defer func() { e.in, e.bins = nil, nil }()
	// First pass: check the JSON and count the children of each
	// container, so that the second can write msgpack headers up front.
	var leaf func([]byte, int) (int, bool)
	if nbins := len(bins); nbins > 0 {
		leaf = func(b []byte, i int) (int, bool) {
			_, end, ok := placeholderAt(b, i, nbins)
			return end, ok
		}
	}
	counts, err := jsontext.Count(b, e.counts, leaf)
	e.counts = counts
	if err != nil {
		return err
	}
	mark := len(e.Buf)
	if err := e.value(); err != nil {
		e.Buf = e.Buf[:mark]
		return err
	}
	return nil
}

// value writes the value at e.in[e.i:], checked by the scanner.
func (e *Encoder) value() error {
	e.skipSpace()
	b := e.in
	switch c := b[e.i]; c {
	case '{':
		if num, end, ok := placeholderAt(b, e.i, len(e.bins)); ok {
			e.Bin(e.bins[num])
			e.i = end
			return nil
		}
		return e.object()
	case '[':
		n := int(e.counts[e.ci])
		e.ci++
		e.ArrayHeader(n)
		e.i++
		for k := 0; k < n; k++ {
			e.skipSpace()
			if b[e.i] == ',' {
				e.i++
			}
			if err := e.value(); err != nil {
				return err
			}
		}
		e.skipSpace()
		e.i++ // ']'
	case '"':
		e.stringLiteral()
	case 't':
		e.Bool(true)
		e.i += 4
	case 'f':
		e.Bool(false)
		e.i += 5
	case 'n':
		e.Nil()
		e.i += 4
	default:
		start := e.i
		for e.i < len(b) && isNumberByte(b[e.i]) {
			e.i++
		}
		e.numberLiteral(b[start:e.i])
	}
	return nil
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

func (e *Encoder) skipSpace() { e.i = jsontext.SkipSpace(e.in, e.i) }

// stringLiteral writes the JSON string at e.in[e.i:].
func (e *Encoder) stringLiteral() {
	b := e.in
	start := e.i + 1
	j, escaped := start, false
	for b[j] != '"' {
		if b[j] == '\\' {
			escaped = true
			j++
		}
		j++
	}
	e.i = j + 1
	body := b[start:j]
	if escaped || !utf8.Valid(body) {
		e.str = jsontext.AppendUnquoted(e.str[:0], body)
		body = e.str
	}
	e.StrHeader(len(body))
	e.Buf = append(e.Buf, body...)
}

// numberLiteral writes a JSON number as the double JSON.parse reads.
func (e *Encoder) numberLiteral(t []byte) {
	// Most numbers are small integers: read those without strconv.
	neg := t[0] == '-'
	digits := t
	if neg {
		digits = t[1:]
	}
	if len(digits) <= 15 {
		var v int64
		ok := true
		for _, c := range digits {
			if c < '0' || c > '9' {
				ok = false
				break
			}
			v = v*10 + int64(c-'0')
		}
		if ok {
			if neg {
				v = -v
			}
			e.Int(v)
			return
		}
	}
	f, err := strconv.ParseFloat(string(t), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		f = math.NaN() // not reached: the scanner checked the syntax
	}
	e.Number(f)
}

// object writes the object at e.in[e.i:] with its keys in JavaScript's
// order.
func (e *Encoder) object() error {
	n := int(e.counts[e.ci])
	e.ci++
	start := len(e.Buf)
	e.MapHeader(n)
	base := len(e.members)
	e.i++ // '{'
	for k := 0; k < n; k++ {
		e.skipSpace()
		if e.in[e.i] == ',' {
			e.i++
			e.skipSpace()
		}
		m := span{start: len(e.Buf)}
		e.stringLiteral()
		m.keyEnd = len(e.Buf)
		e.skipSpace()
		e.i++ // ':'
		if err := e.value(); err != nil {
			return err
		}
		m.end = len(e.Buf)
		e.members = append(e.members, m)
	}
	e.skipSpace()
	e.i++ // '}'
	members := e.members[base:]
	if !inJSOrder(e.Buf, members) {
		e.reorder(start, members)
	}
	e.members = e.members[:base]
	return nil
}

// inJSOrder reports whether members (msgpack key-value spans in buf) are
// already as a JavaScript object holds them: array-index keys first, in
// ascending order, and no key twice.
func inJSOrder(buf []byte, members []span) bool {
	last, named := int64(-1), false
	for i, m := range members {
		if idx, ok := arrayIndex(msgpackStrBody(buf[m.start:m.keyEnd])); ok {
			if named || idx <= last {
				return false
			}
			last = idx
		} else {
			named = true
		}
		if len(members) <= 16 {
			key := buf[m.start:m.keyEnd]
			for _, o := range members[:i] {
				if bytes.Equal(buf[o.start:o.keyEnd], key) {
					return false
				}
			}
		}
	}
	if len(members) > 16 {
		seen := make(map[string]struct{}, len(members))
		for _, m := range members {
			key := string(buf[m.start:m.keyEnd])
			if _, dup := seen[key]; dup {
				return false
			}
			seen[key] = struct{}{}
		}
	}
	return true
}

// msgpackStrBody returns the bytes of a msgpack str item.
func msgpackStrBody(b []byte) []byte {
	switch c := b[0]; {
	case c >= 0xa0 && c <= 0xbf:
		return b[1:]
	case c == 0xd9:
		return b[2:]
	case c == 0xda:
		return b[3:]
	case c == 0xdb:
		return b[5:]
	}
	return nil
}

// arrayIndex reports whether key is an array index in JavaScript (a
// canonical decimal integer from 0 to 2^32-2), which objects list first.
func arrayIndex(key []byte) (int64, bool) {
	if len(key) == 0 || len(key) > 10 || (key[0] == '0' && len(key) > 1) {
		return 0, false
	}
	var v int64
	for _, c := range key {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v <= 1<<32-2
}

// reorder rewrites the map that starts at buf[start] with its members in
// JavaScript's order (see jsOrder).
func (e *Encoder) reorder(start int, members []span) {
	e.order = jsOrder(e.order[:0], len(members), func(i int) []byte {
		return e.Buf[members[i].start:members[i].keyEnd]
	}, func(i int) []byte {
		return msgpackStrBody(e.Buf[members[i].start:members[i].keyEnd])
	}, nil)
	e.tmp = AppendMapHeader(e.tmp[:0], len(e.order))
	for _, i := range e.order {
		e.tmp = append(e.tmp, e.Buf[members[i].start:members[i].end]...)
	}
	e.Buf = append(e.Buf[:start], e.tmp...)
}

// jsOrder lists the members of an object (n of them, in the order they
// were read, each key's text given by key and its decoded string by name)
// in the order a JavaScript object built from them holds them: keys that
// are array indices in ascending order, then the others in order of first
// appearance; a repeated key takes its place from its first appearance and
// its value from its last. Members whose last value is undefined (per
// dropped) are left out, as JSON.stringify leaves them out.
func jsOrder(order []int32, n int, key, name func(int) []byte, dropped func(int) bool) []int32 {
	type entry struct {
		first, last int
		idx         int64
		isIdx       bool
	}
	entries := make([]entry, 0, n)
	byKey := make(map[string]int, n)
	for i := range n {
		k := string(key(i))
		if j, ok := byKey[k]; ok {
			entries[j].last = i
			continue
		}
		idx, isIdx := arrayIndex(name(i))
		byKey[k] = len(entries)
		entries = append(entries, entry{first: i, last: i, idx: idx, isIdx: isIdx})
	}
	slices.SortStableFunc(entries, func(a, b entry) int {
		switch {
		case a.isIdx && b.isIdx:
			return int(a.idx - b.idx)
		case a.isIdx:
			return -1
		case b.isIdx:
			return 1
		}
		return a.first - b.first
	})
	for _, en := range entries {
		if dropped == nil || !dropped(en.last) {
			order = append(order, int32(en.last))
		}
	}
	return order
}

// PlaceholderPrefix starts every placeholder in an argument's JSON (see
// socketio.Arg).
const PlaceholderPrefix = placeholderPrefix

// PlaceholderAt reports whether b[i:] starts with a placeholder for one
// of nbins attachments, and returns its number and the index after it.
func PlaceholderAt(b []byte, i, nbins int) (num, end int, ok bool) { return placeholderAt(b, i, nbins) }
