package notepack

import (
	"bytes"
	"errors"
	"math"
	"strconv"

	"github.com/chatio/socketio-chat/internal/jsontext"
)

// msgpack → JSON: what a Node node's clients receive for a value that
// notepack.io decodes. Node decodes the message into JavaScript values and
// socket.io-parser encodes them for the clients, with JSON.stringify after
// replacing each Buffer and ArrayBuffer by a placeholder. The Decoder
// writes the same JSON directly from the msgpack bytes:
//
//   - numbers as JavaScript writes them ("1e+21", "5e-7", -0 as 0); every
//     msgpack integer is a double in JavaScript, so integers beyond 2^53
//     lose their last digits as they do in Node;
//   - strings read as Node reads UTF-8 (ill-formed bytes as U+FFFD), WTF-8
//     surrogates aside (see internal/jsontext), escaped as JSON.stringify escapes;
//   - maps as the JavaScript object notepack.io builds: array-index keys
//     first, a repeated key in its first place with its last value, keys
//     that are numbers, booleans, null or undefined named as String() names
//     them (other keys are refused); one difference: a "__proto__" key is
//     kept as a key, as JSON.parse keeps it (notepack.io's Decoder assigns
//     it, which drops it);
//   - bin and ext type 0 (ArrayBuffer) as placeholders and attachments;
//   - notepack.io's undefined (fixext 1, type 0) as JSON.stringify treats
//     undefined: left out of objects, null in arrays;
//   - timestamps (ext -1) and notepack.io's old dates (fixext 8, type 0) as
//     Date.prototype.toJSON writes them: the ISO string, or null when out of
//     JavaScript's range; other ext types as [type, <binary>], as
//     notepack.io returns them.
//
// The input is untrusted: every length is checked, nesting is bounded by
// maxDepth, and whatever notepack.io would refuse is refused.

var (
	errTruncated = errors.New("msgpack: truncated")
	errTrailing  = errors.New("msgpack: trailing bytes")
	ErrType      = errors.New("msgpack: unexpected type")
	errKey       = errors.New("msgpack: map key of a type not supported")
)

// Decoder reads msgpack. Attachments it returns alias its input.
type Decoder struct {
	b []byte
	i int

	out     []byte // JSON being written
	bins    [][]byte
	members []jmember // members of the maps being written (a stack)
	keys    []byte    // keys of members whose value is undefined
	tmp     []byte
	order   []int32
}

// jmember is one member of a map being written: `"key":value` at
// out[start:end], or, when undef, a key alone at keys[start:keyEnd].
type jmember struct {
	start, keyEnd, end int
	undef              bool
}

func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// reset makes d read b, keeping its buffers.
func (d *Decoder) Reset(b []byte) {
	d.b, d.i = b, 0
	d.out, d.bins = d.out[:0], nil
	d.members, d.keys = d.members[:0], d.keys[:0]
}

func (d *Decoder) need(n int) error {
	if n < 0 || len(d.b)-d.i < n {
		return errTruncated
	}
	return nil
}

func (d *Decoder) byte() (byte, error) {
	if d.i >= len(d.b) {
		return 0, errTruncated
	}
	c := d.b[d.i]
	d.i++
	return c, nil
}

func (d *Decoder) take(n int) ([]byte, error) {
	if err := d.need(n); err != nil {
		return nil, err
	}
	b := d.b[d.i : d.i+n : d.i+n]
	d.i += n
	return b, nil
}

func (d *Decoder) Uint(size int) (uint64, error) {
	b, err := d.take(size)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// end checks that the whole input was read, as notepack.io does.
func (d *Decoder) End() error {
	if d.i != len(d.b) {
		return errTrailing
	}
	return nil
}

// length reads the length of a container, refusing one that the rest of
// the input cannot hold (each element takes a byte at least).
func (d *Decoder) length(size, per int) (int, error) {
	v, err := d.Uint(size)
	if err != nil {
		return 0, err
	}
	if v > uint64(len(d.b)-d.i)/uint64(per) {
		return 0, errTruncated
	}
	return int(v), nil
}

// arrayLen reads an array header.
func (d *Decoder) ArrayLen() (int, error) {
	c, err := d.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c >= 0x90 && c <= 0x9f:
		return d.check(int(c&0x0f), 1)
	case c == 0xdc:
		return d.length(2, 1)
	case c == 0xdd:
		return d.length(4, 1)
	}
	d.i--
	return 0, ErrType
}

// mapLen reads a map header.
func (d *Decoder) MapLen() (int, error) {
	c, err := d.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c >= 0x80 && c <= 0x8f:
		return d.check(int(c&0x0f), 2)
	case c == 0xde:
		return d.length(2, 2)
	case c == 0xdf:
		return d.length(4, 2)
	}
	d.i--
	return 0, ErrType
}

func (d *Decoder) check(n, per int) (int, error) {
	if n*per > len(d.b)-d.i {
		return 0, errTruncated
	}
	return n, nil
}

// isStr reports whether the next item is a string.
func (d *Decoder) IsStr() bool {
	if d.i >= len(d.b) {
		return false
	}
	c := d.b[d.i]
	return c >= 0xa0 && c <= 0xbf || c >= 0xd9 && c <= 0xdb
}

// str reads a string item's bytes.
func (d *Decoder) Str() ([]byte, error) {
	c, err := d.byte()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c == 0xd9:
		n, err = d.Uint(1)
	case c == 0xda:
		n, err = d.Uint(2)
	case c == 0xdb:
		n, err = d.Uint(4)
	default:
		d.i--
		return nil, ErrType
	}
	if err != nil {
		return nil, err
	}
	if n > uint64(len(d.b)-d.i) {
		return nil, errTruncated
	}
	return d.take(int(n))
}

// number reads a number item as the double JavaScript holds. ok is false,
// and nothing is read, when the next item is not a number.
func (d *Decoder) Number() (f float64, ok bool, err error) {
	if d.i >= len(d.b) {
		return 0, false, errTruncated
	}
	c := d.b[d.i]
	switch {
	case c < 0x80:
		d.i++
		return float64(c), true, nil
	case c >= 0xe0:
		d.i++
		return float64(int8(c)), true, nil
	case c >= 0xcc && c <= 0xcf:
		d.i++
		v, err := d.Uint(1 << (c - 0xcc))
		return float64(v), true, err
	case c >= 0xd0 && c <= 0xd3:
		d.i++
		size := 1 << (c - 0xd0)
		v, err := d.Uint(size)
		shift := 64 - 8*size
		return float64(int64(v<<shift) >> shift), true, err
	case c == 0xca:
		d.i++
		v, err := d.Uint(4)
		return float64(math.Float32frombits(uint32(v))), true, err
	case c == 0xcb:
		d.i++
		v, err := d.Uint(8)
		return math.Float64frombits(v), true, err
	}
	return 0, false, nil
}

// truthy reads a value as a JavaScript condition.
func (d *Decoder) Truthy() (bool, error) {
	if f, ok, err := d.Number(); ok || err != nil {
		return f != 0 && !math.IsNaN(f), err
	}
	if d.IsStr() {
		s, err := d.Str()
		return len(s) > 0, err
	}
	c := d.b[d.i]
	if c == 0xc2 || c == 0xc3 || c == 0xc0 {
		d.i++
		return c == 0xc3, nil
	}
	undef, err := d.Skip()
	return !undef, err
}

// skip reads one item, checking it, and reports whether it was undefined.
// fields reads a map, calling field with each string key and the Decoder
// at its value; field must consume the value. Entries with other keys are
// skipped.
func (d *Decoder) Fields(field func(key []byte) error) error {
	n, err := d.MapLen()
	if err != nil {
		return err
	}
	for range n {
		if !d.IsStr() {
			if _, err := d.Skip(); err != nil {
				return err
			}
			if _, err := d.Skip(); err != nil {
				return err
			}
			continue
		}
		key, err := d.Str()
		if err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
	}
	return nil
}

// optNumber reads a number (ok), or skips another item (not ok).
func (d *Decoder) OptNumber() (f float64, ok bool, err error) {
	if f, ok, err = d.Number(); err != nil || ok {
		return f, ok, err
	}
	_, err = d.Skip()
	return 0, false, err
}

func (d *Decoder) Skip() (bool, error) {
	mark, nbins := len(d.out), len(d.bins)
	undef, err := d.value(0)
	d.out, d.bins = d.out[:mark], d.bins[:nbins]
	return undef, err
}

// Arg transcodes the next item into one argument of a packet: its JSON
// and its attachments (which alias the input). An undefined argument is
// null, as JSON.stringify writes it in the packet's array.
func (d *Decoder) Arg() (json []byte, bins [][]byte, err error) {
	d.out, d.bins = d.out[:0], nil
	undef, err := d.value(0)
	if err != nil {
		return nil, nil, err
	}
	if undef {
		d.out = append(d.out, "null"...)
	}
	json, bins = bytes.Clone(d.out), d.bins
	d.bins = nil
	return json, bins, nil
}

// Pos is the index of the next item in the input.
func (d *Decoder) Pos() int { return d.i }

// Seek makes the decoder read from index i of its input again.
func (d *Decoder) Seek(i int) { d.i = i }

// Peek returns the first byte of the next item without reading it.
func (d *Decoder) Peek() (byte, bool) {
	if d.i >= len(d.b) {
		return 0, false
	}
	return d.b[d.i], true
}

// value writes the JSON of the next item to d.out. For undefined it writes
// nothing and reports it.
func (d *Decoder) value(depth int) (undef bool, err error) {
	if f, ok, err := d.Number(); ok || err != nil {
		d.out = AppendJSNumber(d.out, f)
		return false, err
	}
	c, err := d.byte()
	if err != nil {
		return false, err
	}
	switch {
	case c >= 0x80 && c <= 0x8f:
		n, err := d.check(int(c&0x0f), 2)
		if err != nil {
			return false, err
		}
		return false, d.object(n, depth)
	case c >= 0x90 && c <= 0x9f:
		n, err := d.check(int(c&0x0f), 1)
		if err != nil {
			return false, err
		}
		return false, d.array(n, depth)
	case c >= 0xa0 && c <= 0xbf || c >= 0xd9 && c <= 0xdb:
		d.i--
		s, err := d.Str()
		if err != nil {
			return false, err
		}
		d.out = jsontext.AppendQuote(d.out, s)
		return false, nil
	}
	switch c {
	case 0xc0:
		d.out = append(d.out, "null"...)
	case 0xc2:
		d.out = append(d.out, "false"...)
	case 0xc3:
		d.out = append(d.out, "true"...)
	case 0xc4, 0xc5, 0xc6:
		n, err := d.Uint(1 << (c - 0xc4))
		if err != nil {
			return false, err
		}
		if n > uint64(len(d.b)-d.i) {
			return false, errTruncated
		}
		b, _ := d.take(int(n))
		d.placeholder(b)
	case 0xc7, 0xc8, 0xc9:
		n, err := d.Uint(1 << (c - 0xc7))
		if err != nil {
			return false, err
		}
		t, err := d.byte()
		if err != nil {
			return false, err
		}
		if n > uint64(len(d.b)-d.i) {
			return false, errTruncated
		}
		if c == 0xc7 && int8(t) == -1 {
			// timestamp 96: notepack.io reads 12 bytes whatever the length
			if n != 12 {
				return false, ErrType
			}
			ns, _ := d.Uint(4)
			sec, _ := d.Uint(8)
			secs := float64(int64(sec))
			d.out = AppendJSDate(d.out, float64(secs*1e3)+float64(ns)/1e6)
			return false, nil
		}
		return false, d.ext(int8(t), int(n), depth)
	case 0xdc, 0xdd:
		n, err := d.length(2<<(c-0xdc), 1)
		if err != nil {
			return false, err
		}
		return false, d.array(n, depth)
	case 0xde, 0xdf:
		n, err := d.length(2<<(c-0xde), 2)
		if err != nil {
			return false, err
		}
		return false, d.object(n, depth)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		t, err := d.byte()
		if err != nil {
			return false, err
		}
		n := 1 << (c - 0xd4)
		if err := d.need(n); err != nil {
			return false, err
		}
		switch {
		case c == 0xd4 && t == 0:
			d.i++
			return true, nil // undefined
		case c == 0xd6 && int8(t) == -1: // timestamp 32
			sec, _ := d.Uint(4)
			d.out = AppendJSDate(d.out, float64(sec)*1e3)
			return false, nil
		case c == 0xd7 && t == 0: // notepack.io's old date: milliseconds
			ms, _ := d.Uint(8)
			d.out = AppendJSDate(d.out, float64(int64(ms)))
			return false, nil
		case c == 0xd7 && int8(t) == -1: // timestamp 64
			hi, _ := d.Uint(4)
			lo, _ := d.Uint(4)
			secs := float64((hi&3)<<32 | lo)
			d.out = AppendJSDate(d.out, float64(secs*1e3)+float64(hi>>2)/1e6)
			return false, nil
		}
		return false, d.ext(int8(t), n, depth)
	default: // 0xc1, never used
		return false, ErrType
	}
	return false, nil
}

// placeholder writes a placeholder for b and makes it an attachment.
func (d *Decoder) placeholder(b []byte) {
	d.out = append(d.out, placeholderPrefix...)
	d.out = appendInt(d.out, len(d.bins))
	d.out = append(d.out, '}')
	d.bins = append(d.bins, b)
}

func appendInt(dst []byte, v int) []byte { return strconv.AppendInt(dst, int64(v), 10) }

// ext writes an extension of n bytes: binary for type 0 (an ArrayBuffer
// in notepack.io), else [type, <binary>].
func (d *Decoder) ext(t int8, n, depth int) error {
	b, err := d.take(n)
	if err != nil {
		return err
	}
	if t == 0 {
		d.placeholder(b)
		return nil
	}
	if depth >= maxDepth {
		return errTooDeep
	}
	d.out = append(d.out, '[')
	d.out = AppendJSNumber(d.out, float64(t))
	d.out = append(d.out, ',')
	d.placeholder(b)
	d.out = append(d.out, ']')
	return nil
}

func (d *Decoder) array(n, depth int) error {
	if depth >= maxDepth {
		return errTooDeep
	}
	d.out = append(d.out, '[')
	for k := range n {
		if k > 0 {
			d.out = append(d.out, ',')
		}
		undef, err := d.value(depth + 1)
		if err != nil {
			return err
		}
		if undef {
			d.out = append(d.out, "null"...)
		}
	}
	d.out = append(d.out, ']')
	return nil
}

func (d *Decoder) object(n, depth int) error {
	if depth >= maxDepth {
		return errTooDeep
	}
	start, binsBase := len(d.out), len(d.bins)
	d.out = append(d.out, '{')
	base, keysMark := len(d.members), len(d.keys)
	written := 0
	for range n {
		comma := len(d.out)
		if written > 0 {
			d.out = append(d.out, ',')
		}
		m := jmember{start: len(d.out)}
		if err := d.key(); err != nil {
			return err
		}
		m.keyEnd = len(d.out)
		d.out = append(d.out, ':')
		undef, err := d.value(depth + 1)
		if err != nil {
			return err
		}
		if undef {
			// Keep the key aside: a later value for it would still take
			// this place.
			k := len(d.keys)
			d.keys = append(d.keys, d.out[m.start:m.keyEnd]...)
			m = jmember{start: k, keyEnd: len(d.keys), undef: true}
			d.out = d.out[:comma]
		} else {
			m.end = len(d.out)
			written++
		}
		d.members = append(d.members, m)
	}
	d.out = append(d.out, '}')
	members := d.members[base:]
	if !d.inJSOrder(members) {
		d.reorder(start, binsBase, members)
	}
	d.members, d.keys = d.members[:base], d.keys[:keysMark]
	return nil
}

// memberKey is a member's key as written (quoted).
func (d *Decoder) memberKey(m jmember) []byte {
	if m.undef {
		return d.keys[m.start:m.keyEnd]
	}
	return d.out[m.start:m.keyEnd]
}

// inJSOrder reports whether the members are as a JavaScript object holds
// them (see Encoder's inJSOrder).
func (d *Decoder) inJSOrder(members []jmember) bool {
	last, named := int64(-1), false
	for i, m := range members {
		key := d.memberKey(m)
		if idx, ok := arrayIndex(key[1 : len(key)-1]); ok {
			if named || idx <= last {
				return false
			}
			last = idx
		} else {
			named = true
		}
		if len(members) <= 16 {
			for _, o := range members[:i] {
				if bytes.Equal(d.memberKey(o), key) {
					return false
				}
			}
		}
	}
	if len(members) > 16 {
		seen := make(map[string]struct{}, len(members))
		for _, m := range members {
			key := string(d.memberKey(m))
			if _, dup := seen[key]; dup {
				return false
			}
			seen[key] = struct{}{}
		}
	}
	return true
}

// reorder rewrites the object that starts at out[start] in JavaScript's
// order, without the members whose last value is undefined. The
// attachments of the object, from binsBase on, are numbered again in the
// new order (socket.io-parser numbers them as it meets them), and those of
// values left out are dropped.
func (d *Decoder) reorder(start, binsBase int, members []jmember) {
	d.order = jsOrder(d.order[:0], len(members), func(i int) []byte {
		return d.memberKey(members[i])
	}, func(i int) []byte {
		k := d.memberKey(members[i])
		return k[1 : len(k)-1]
	}, func(i int) bool { return members[i].undef })
	d.tmp = append(d.tmp[:0], '{')
	for k, i := range d.order {
		if k > 0 {
			d.tmp = append(d.tmp, ',')
		}
		m := members[i]
		d.tmp = append(d.tmp, d.out[m.start:m.end]...)
	}
	d.tmp = append(d.tmp, '}')
	d.out = d.out[:start]
	if len(d.bins) == binsBase {
		d.out = append(d.out, d.tmp...)
		return
	}
	// Our placeholders are the only ones in the text: a JSON string
	// cannot hold the prefix unescaped.
	old := append([][]byte(nil), d.bins[binsBase:]...)
	d.bins = d.bins[:binsBase]
	rest := d.tmp
	for {
		i := bytes.Index(rest, []byte(placeholderPrefix))
		if i < 0 {
			d.out = append(d.out, rest...)
			return
		}
		j := i + len(placeholderPrefix)
		k := j + bytes.IndexByte(rest[j:], '}')
		n, err := strconv.Atoi(string(rest[j:k]))
		if err != nil || n < binsBase || n-binsBase >= len(old) {
			d.out = append(d.out, rest[:k+1]...) // not ours
			rest = rest[k+1:]
			continue
		}
		d.out = append(d.out, rest[:j]...)
		d.out = appendInt(d.out, len(d.bins))
		d.out = append(d.out, '}')
		d.bins = append(d.bins, old[n-binsBase])
		rest = rest[k+1:]
	}
}

// key writes a map key as the property name JavaScript makes of it.
func (d *Decoder) key() error {
	if d.IsStr() {
		s, err := d.Str()
		if err != nil {
			return err
		}
		d.out = jsontext.AppendQuote(d.out, s)
		return nil
	}
	if f, ok, err := d.Number(); ok || err != nil {
		d.out = jsontext.AppendQuote(d.out, JSNumberString(f))
		return err
	}
	c, err := d.byte()
	if err != nil {
		return err
	}
	switch c {
	case 0xc0:
		d.out = append(d.out, `"null"`...)
	case 0xc2:
		d.out = append(d.out, `"false"`...)
	case 0xc3:
		d.out = append(d.out, `"true"`...)
	case 0xd4:
		if t, err := d.byte(); err != nil || t != 0 {
			return errKey
		}
		if _, err := d.byte(); err != nil {
			return err
		}
		d.out = append(d.out, `"undefined"`...)
	default:
		return errKey
	}
	return nil
}
