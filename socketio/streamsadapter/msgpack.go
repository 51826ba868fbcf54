package streamsadapter

// The msgpack of @msgpack/msgpack 2.8 (what @socket.io/redis-streams-adapter
// uses for sessions, binary broadcasts and its pub/sub messages): numbers
// that are safe integers as msgpack integers, others as float64, strings
// as str, Buffers as bin. This file is all the msgpack of the package, kept
// small so that it can later give way to a shared codec.

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"
)

var errMsgpack = errors.New("msgpack: malformed")

// mpEncoder appends msgpack to buf.
type mpEncoder struct{ buf []byte }

func (e *mpEncoder) nil_() { e.buf = append(e.buf, 0xc0) }
func (e *mpEncoder) bool_(v bool) {
	if v {
		e.buf = append(e.buf, 0xc3)
	} else {
		e.buf = append(e.buf, 0xc2)
	}
}

func (e *mpEncoder) int_(v int64) {
	b := e.buf
	switch {
	case v >= 0 && v < 128:
		b = append(b, byte(v))
	case v >= 0 && v <= math.MaxUint8:
		b = append(b, 0xcc, byte(v))
	case v >= 0 && v <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v >= 0 && v <= math.MaxUint32:
		b = binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	case v >= 0:
		b = binary.BigEndian.AppendUint64(append(b, 0xcf), uint64(v))
	case v >= -32:
		b = append(b, byte(v))
	case v >= math.MinInt8:
		b = append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		b = binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32:
		b = binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
	}
	e.buf = b
}

// number encodes a JavaScript number as @msgpack/msgpack does.
func (e *mpEncoder) number(f float64) {
	if f == math.Trunc(f) && math.Abs(f) <= 1<<53-1 && !(f == 0 && math.Signbit(f)) {
		e.int_(int64(f))
		return
	}
	e.buf = binary.BigEndian.AppendUint64(append(e.buf, 0xcb), math.Float64bits(f))
}

func (e *mpEncoder) str(s string) {
	n := len(s)
	switch {
	case n < 32:
		e.buf = append(e.buf, 0xa0|byte(n))
	case n <= math.MaxUint8:
		e.buf = append(e.buf, 0xd9, byte(n))
	case n <= math.MaxUint16:
		e.buf = binary.BigEndian.AppendUint16(append(e.buf, 0xda), uint16(n))
	default:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xdb), uint32(n))
	}
	e.buf = append(e.buf, s...)
}

func (e *mpEncoder) bin(p []byte) {
	n := len(p)
	switch {
	case n <= math.MaxUint8:
		e.buf = append(e.buf, 0xc4, byte(n))
	case n <= math.MaxUint16:
		e.buf = binary.BigEndian.AppendUint16(append(e.buf, 0xc5), uint16(n))
	default:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xc6), uint32(n))
	}
	e.buf = append(e.buf, p...)
}

func (e *mpEncoder) header(n int, fix, b16, b32 byte) {
	switch {
	case n < 16:
		e.buf = append(e.buf, fix|byte(n))
	case n <= math.MaxUint16:
		e.buf = binary.BigEndian.AppendUint16(append(e.buf, b16), uint16(n))
	default:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, b32), uint32(n))
	}
}

func (e *mpEncoder) array(n int) { e.header(n, 0x90, 0xdc, 0xdd) }
func (e *mpEncoder) map_(n int)  { e.header(n, 0x80, 0xde, 0xdf) }

// value encodes a Go value of the kinds encoding/json produces (and
// []byte, []string, json.RawMessage): a socket's data, a session.
func (e *mpEncoder) value(v any) error {
	switch v := v.(type) {
	case nil:
		e.nil_()
	case bool:
		e.bool_(v)
	case float64:
		e.number(v)
	case float32:
		e.number(float64(v))
	case int:
		e.int_(int64(v))
	case int64:
		e.int_(v)
	case int32:
		e.int_(int64(v))
	case uint32:
		e.int_(int64(v))
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return err
		}
		e.number(f)
	case string:
		e.str(v)
	case []byte:
		e.bin(v)
	case []string:
		e.array(len(v))
		for _, s := range v {
			e.str(s)
		}
	case []any:
		e.array(len(v))
		for _, x := range v {
			if err := e.value(x); err != nil {
				return err
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		e.map_(len(keys))
		for _, k := range keys {
			e.str(k)
			if err := e.value(v[k]); err != nil {
				return err
			}
		}
	case json.RawMessage:
		return e.json(v, nil)
	default:
		// Anything else as encoding/json sees it.
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return e.json(b, nil)
	}
	return nil
}

// json transcodes JSON text to msgpack, object keys in their order. A
// placeholder {"_placeholder":true,"num":i} becomes attachments[i] as bin.
func (e *mpEncoder) json(text []byte, attachments [][]byte) error {
	d := json.NewDecoder(bytes.NewReader(text))
	d.UseNumber()
	if err := e.jsonValue(d, attachments); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("json: trailing data")
	}
	return nil
}

func (e *mpEncoder) jsonValue(d *json.Decoder, att [][]byte) error {
	t, err := d.Token()
	if err != nil {
		return err
	}
	switch t := t.(type) {
	case json.Delim:
		if t == '[' {
			var items []json.RawMessage
			for d.More() {
				var raw json.RawMessage
				if err := d.Decode(&raw); err != nil {
					return err
				}
				items = append(items, raw)
			}
			if _, err := d.Token(); err != nil {
				return err
			}
			e.array(len(items))
			for _, it := range items {
				if err := e.json(it, att); err != nil {
					return err
				}
			}
			return nil
		}
		var keys []string
		var vals []json.RawMessage
		for d.More() {
			kt, err := d.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			var raw json.RawMessage
			if err := d.Decode(&raw); err != nil {
				return err
			}
			keys, vals = append(keys, k), append(vals, raw)
		}
		if _, err := d.Token(); err != nil {
			return err
		}
		if len(keys) == 2 && keys[0] == "_placeholder" && string(vals[0]) == "true" && keys[1] == "num" {
			if i, err := strconv.Atoi(string(vals[1])); err == nil && i >= 0 && i < len(att) {
				e.bin(att[i])
				return nil
			}
		}
		e.map_(len(keys))
		for i, k := range keys {
			e.str(k)
			if err := e.json(vals[i], att); err != nil {
				return err
			}
		}
		return nil
	case nil:
		e.nil_()
	case bool:
		e.bool_(t)
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return err
		}
		e.number(f)
	case string:
		e.str(t)
	}
	return nil
}

// mpDecoder reads msgpack from b.
type mpDecoder struct {
	b []byte
	i int
}

func (d *mpDecoder) need(n int) ([]byte, error) {
	if n < 0 || len(d.b)-d.i < n {
		return nil, errMsgpack
	}
	p := d.b[d.i : d.i+n]
	d.i += n
	return p, nil
}

func (d *mpDecoder) uintN(n int) (uint64, error) {
	p, err := d.need(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range p {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// object is a decoded msgpack map, its keys in their order (an argument
// travels on with them in that order).
type object struct {
	keys []string
	vals []any
}

// get is the value of key k (the last one, as JavaScript keeps), or nil.
func (o *object) get(k string) any {
	if o == nil {
		return nil
	}
	for i := len(o.keys) - 1; i >= 0; i-- {
		if o.keys[i] == k {
			return o.vals[i]
		}
	}
	return nil
}

func asObject(v any) *object { o, _ := v.(*object); return o }

// plain turns decoded values into what encoding/json would give (objects
// as map[string]any), []byte aside: a socket's data.
func plain(v any) any {
	switch v := v.(type) {
	case *object:
		m := make(map[string]any, len(v.keys))
		for i, k := range v.keys {
			m[k] = plain(v.vals[i])
		}
		return m
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = plain(x)
		}
		return out
	}
	return v
}

// value decodes one value: nil, bool, float64, string, []byte, []any,
// *object.
func (d *mpDecoder) value(depth int) (any, error) {
	if depth > 64 {
		return nil, errMsgpack
	}
	p, err := d.need(1)
	if err != nil {
		return nil, err
	}
	c := p[0]
	length := func(n int) (int, error) { v, err := d.uintN(n); return int(v), err }
	switch {
	case c <= 0x7f:
		return float64(c), nil
	case c >= 0xe0:
		return float64(int8(c)), nil
	case c&0xe0 == 0xa0:
		s, err := d.need(int(c & 0x1f))
		return string(s), err
	case c&0xf0 == 0x90:
		return d.array(int(c&0x0f), depth)
	case c&0xf0 == 0x80:
		return d.mapv(int(c&0x0f), depth)
	}
	switch c {
	case 0xc0:
		return nil, nil
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, err := d.uintN(1 << (c - 0xcc))
		return float64(v), err
	case 0xd0, 0xd1, 0xd2, 0xd3:
		n := 1 << (c - 0xd0)
		v, err := d.uintN(n)
		shift := 64 - 8*n
		return float64(int64(v<<shift) >> shift), err
	case 0xca:
		v, err := d.uintN(4)
		return float64(math.Float32frombits(uint32(v))), err
	case 0xcb:
		v, err := d.uintN(8)
		return math.Float64frombits(v), err
	case 0xd9, 0xda, 0xdb:
		n, err := length(1 << (c - 0xd9))
		if err != nil {
			return nil, err
		}
		s, err := d.need(n)
		return string(s), err
	case 0xc4, 0xc5, 0xc6:
		n, err := length(1 << (c - 0xc4))
		if err != nil {
			return nil, err
		}
		s, err := d.need(n)
		return bytes.Clone(s), err
	case 0xdc, 0xdd:
		n, err := length(2 << (c - 0xdc))
		if err != nil {
			return nil, err
		}
		return d.array(n, depth)
	case 0xde, 0xdf:
		n, err := length(2 << (c - 0xde))
		if err != nil {
			return nil, err
		}
		return d.mapv(n, depth)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext: skipped as nil
		_, err := d.need(1 + 1<<(c-0xd4))
		return nil, err
	case 0xc7, 0xc8, 0xc9:
		n, err := length(1 << (c - 0xc7))
		if err != nil {
			return nil, err
		}
		_, err = d.need(n + 1)
		return nil, err
	}
	return nil, errMsgpack
}

func (d *mpDecoder) array(n, depth int) (any, error) {
	if n > len(d.b)-d.i {
		return nil, errMsgpack
	}
	out := make([]any, 0, n)
	for range n {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (d *mpDecoder) mapv(n, depth int) (any, error) {
	if n > len(d.b)-d.i {
		return nil, errMsgpack
	}
	out := &object{keys: make([]string, 0, n), vals: make([]any, 0, n)}
	for range n {
		k, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		ks, ok := k.(string)
		if !ok {
			ks = fmt.Sprint(k)
			if f, isNum := k.(float64); isNum {
				ks = strconv.FormatFloat(f, 'f', -1, 64)
			}
		}
		out.keys, out.vals = append(out.keys, ks), append(out.vals, v)
	}
	return out, nil
}

// decodeMsgpack decodes one whole msgpack value.
func decodeMsgpack(b []byte) (any, error) {
	d := &mpDecoder{b: b}
	v, err := d.value(0)
	if err == nil && d.i != len(b) {
		err = errMsgpack
	}
	return v, err
}

// toArg turns a decoded value into an argument: JSON text, each []byte an
// attachment behind a placeholder, object keys in their order.
func toArg(v any) (json.RawMessage, [][]byte, error) {
	var att [][]byte
	var b []byte
	var walk func(v any) error
	walk = func(v any) error {
		switch v := v.(type) {
		case []byte:
			b = append(b, `{"_placeholder":true,"num":`...)
			b = strconv.AppendInt(b, int64(len(att)), 10)
			b = append(b, '}')
			att = append(att, v)
		case []any:
			b = append(b, '[')
			for i, x := range v {
				if i > 0 {
					b = append(b, ',')
				}
				if err := walk(x); err != nil {
					return err
				}
			}
			b = append(b, ']')
		case *object:
			b = append(b, '{')
			for i, k := range v.keys {
				if i > 0 {
					b = append(b, ',')
				}
				if !utf8.ValidString(k) {
					return errMsgpack
				}
				kb, _ := json.Marshal(k)
				b = append(append(b, kb...), ':')
				if err := walk(v.vals[i]); err != nil {
					return err
				}
			}
			b = append(b, '}')
		case string:
			if !utf8.ValidString(v) {
				return errMsgpack
			}
			sb, _ := json.Marshal(v)
			b = append(b, sb...)
		default:
			vb, err := json.Marshal(v)
			if err != nil {
				return err
			}
			b = append(b, vb...)
		}
		return nil
	}
	if err := walk(v); err != nil {
		return nil, nil, err
	}
	return b, att, nil
}

// b64 is the base64 Node's Buffer.toString("base64") writes.
var b64 = base64.StdEncoding
