package socketio

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"

	"github.com/chatio/socketio-chat/internal/jsontext"
)

// Arg is one argument of an event or acknowledgement, as it travels: JSON
// text in which each binary attachment stands as a placeholder
// {"_placeholder":true,"num":i} referring to Attachments[i].
//
// An Arg received from a client keeps the client's JSON byte for byte (its
// key order, number spelling and escapes), placeholders aside; emitting it
// sends exactly that on.
type Arg struct {
	JSON        json.RawMessage // the argument's JSON text, placeholders included
	Attachments [][]byte        // the binary attachments the placeholders refer to
}

// placeholderPrefix starts every placeholder in an Arg's JSON. It cannot
// occur inside a JSON string (its quotes would be escaped there), so
// finding it finds placeholders.
const placeholderPrefix = `{"_placeholder":true,"num":`

// Binary returns the Arg of one binary value.
func Binary(b []byte) Arg {
	return Arg{JSON: json.RawMessage(placeholderPrefix + "0}"), Attachments: [][]byte{b}}
}

// Bytes returns the argument's bytes when it is one binary value.
func (a Arg) Bytes() ([]byte, bool) {
	if len(a.Attachments) == 1 && string(a.JSON) == placeholderPrefix+"0}" {
		return a.Attachments[0], true
	}
	return nil, false
}

// Size is the argument's size: the bytes of its JSON text without the
// placeholders, and of its attachments (a binary argument's size is its
// length).
func (a Arg) Size() int {
	n := len(a.JSON)
	for _, b := range a.Attachments {
		n += len(b)
	}
	if len(a.Attachments) > 0 {
		rest := []byte(a.JSON)
		for {
			i := bytes.Index(rest, []byte(placeholderPrefix))
			if i < 0 {
				break
			}
			end := bytes.IndexByte(rest[i:], '}')
			n -= end + 1
			rest = rest[i+end+1:]
		}
	}
	return n
}

// MarshalJSON makes an Arg without attachments usable inside values that
// encoding/json encodes.
func (a Arg) MarshalJSON() ([]byte, error) {
	if len(a.Attachments) > 0 {
		return nil, errors.New("socketio: an Arg with attachments inside a value encoding/json encodes")
	}
	if len(a.JSON) == 0 {
		return []byte("null"), nil
	}
	return a.JSON, nil
}

// String is the argument's JSON, for logs.
func (a Arg) String() string { return string(a.JSON) }

// Decode unmarshals the argument into v with encoding/json. Binary
// attachments are decoded as []byte when v is a *[]byte (a binary
// argument) or a *any (placeholders replaced by their bytes); other types
// see placeholders as objects.
func (a Arg) Decode(v any) error {
	if len(a.Attachments) == 0 {
		return json.Unmarshal(a.JSON, v)
	}
	if p, ok := v.(*[]byte); ok {
		if b, ok := a.Bytes(); ok {
			*p = b
			return nil
		}
		return errors.New("socketio: argument is not one binary value")
	}
	if p, ok := v.(*any); ok {
		var x any
		if err := json.Unmarshal(a.JSON, &x); err != nil {
			return err
		}
		*p = a.fill(x)
		return nil
	}
	return json.Unmarshal(a.JSON, v)
}

// fill replaces the placeholders of a decoded value by their bytes.
func (a Arg) fill(x any) any {
	switch v := x.(type) {
	case []any:
		for i := range v {
			v[i] = a.fill(v[i])
		}
	case map[string]any:
		if flag, ok := v["_placeholder"].(bool); ok && flag {
			if n, ok := v["num"].(float64); ok && n >= 0 && int(n) < len(a.Attachments) {
				return a.Attachments[int(n)]
			}
		}
		for k := range v {
			v[k] = a.fill(v[k])
		}
	}
	return x
}

// appendTo appends the argument's JSON to dst with its placeholders
// numbered from first, and its attachments to bins.
func (a Arg) appendTo(dst []byte, bins [][]byte) ([]byte, [][]byte) {
	if len(a.Attachments) == 0 {
		return append(dst, a.JSON...), bins
	}
	first := len(bins)
	bins = append(bins, a.Attachments...)
	if first == 0 {
		return append(dst, a.JSON...), bins
	}
	b := []byte(a.JSON)
	for {
		i := bytes.Index(b, []byte(placeholderPrefix))
		if i < 0 {
			return append(dst, b...), bins
		}
		i += len(placeholderPrefix)
		dst = append(dst, b[:i]...)
		b = b[i:]
		j := 0
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		n, _ := strconv.Atoi(string(b[:j]))
		dst = strconv.AppendInt(dst, int64(first+n), 10)
		b = b[j:]
	}
}

// ToArg turns a Go value into an Arg: an Arg as is; json.RawMessage as its
// text; []byte as one binary attachment; nil, bools, numbers and strings
// as JSON.stringify writes them; []any and map[string]any element by
// element (so []byte inside them become attachments); anything else with
// encoding/json (HTML characters not escaped).
func ToArg(v any) (Arg, error) {
	var bins [][]byte
	b, err := appendValue(nil, v, &bins)
	if err != nil {
		return Arg{}, err
	}
	return Arg{JSON: b, Attachments: bins}, nil
}

func appendValue(dst []byte, v any, bins *[][]byte) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case Arg:
		var out [][]byte
		dst, out = x.appendTo(dst, *bins)
		*bins = out
		return dst, nil
	case *Arg:
		return appendValue(dst, *x, bins)
	case json.RawMessage:
		if err := validValue(x); err != nil {
			return dst, fmt.Errorf("socketio: json.RawMessage argument: %w", err)
		}
		return append(dst, x...), nil
	case []byte:
		dst = append(dst, placeholderPrefix...)
		dst = strconv.AppendInt(dst, int64(len(*bins)), 10)
		*bins = append(*bins, x)
		return append(dst, '}'), nil
	case string:
		return appendQuote(dst, x), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case float64:
		return appendFloat(dst, x), nil
	case float32:
		return appendFloat(dst, float64(x)), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendValue(dst, e, bins); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		// Element by element, not with encoding/json: its strings, numbers
		// and NaN as JSON.stringify writes them, like top-level ones.
		dst = append(dst, '{')
		first := true
		for _, k := range sortedKeys(x) {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendQuote(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendValue(dst, x[k], bins); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	if k := reflect.TypeOf(v).Kind(); k == reflect.Func || k == reflect.Chan {
		return dst, fmt.Errorf("%w (a %T)", ErrFuncArgument, v)
	}
	return appendJSON(dst, v)
}

// ErrFuncArgument is ToArg's error for a func (or channel) value: it
// cannot travel. A callback for the client's acknowledgement is an AckFunc
// (or a func([]Arg, error)) given as the last argument of Emit; with
// EmitWithAck, which takes Args, a callback is a compile error.
var ErrFuncArgument = errors.New("socketio: a func or channel cannot be an event argument: to get an acknowledgement, use EmitWithAck or an AckFunc as Emit's last argument")

// appendFloat writes f as JavaScript does (NaN and infinities are null
// in JSON.stringify).
func appendFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return append(dst, "null"...)
	case f == 0:
		return append(dst, '0') // -0 too, as JavaScript prints it
	}
	b, _ := json.Marshal(f) // encoding/json formats numbers as ECMAScript does
	return append(dst, b...)
}

func appendJSON(dst []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return dst, fmt.Errorf("socketio: cannot encode %T: %w", v, err)
	}
	return append(dst, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...), nil
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// placeholderSpan is a placeholder object found in a received argument.
type placeholderSpan struct {
	start, end int
	num        int
}

var errIllegalAttachments = errors.New("illegal attachments")

// canonicalArg turns an argument of a received binary packet, whose
// placeholders refer to the packet's attachments, into an Arg: its bytes
// are kept, but for each placeholder, written in the canonical form and
// numbered in order of appearance into its own attachments (an attachment
// referred to twice is carried twice, as Node re-encodes it). A
// placeholder whose num does not index an attachment is refused, as in
// Node.
func canonicalArg(b []byte, bins [][]byte) (Arg, error) {
	var spans []placeholderSpan
	if err := findPlaceholders(b, 0, len(bins), &spans); err != nil {
		return Arg{}, err
	}
	if len(spans) == 0 {
		return Arg{JSON: b}, nil
	}
	out := make([]byte, 0, len(b))
	atts := make([][]byte, 0, len(spans))
	last := 0
	for i, sp := range spans {
		out = append(out, b[last:sp.start]...)
		out = append(out, placeholderPrefix...)
		out = strconv.AppendInt(out, int64(i), 10)
		out = append(out, '}')
		atts = append(atts, bins[sp.num])
		last = sp.end
	}
	out = append(out, b[last:]...)
	return Arg{JSON: out, Attachments: atts}, nil
}

// findPlaceholders walks the valid JSON value at b[i:] and records its
// placeholders as Node's reconstructPacket finds them: objects whose
// "_placeholder" member is true (the last one, if repeated, as JSON.parse
// keeps), anywhere but inside a placeholder (whose other members Node
// drops without looking at them).
func findPlaceholders(b []byte, i, nbins int, spans *[]placeholderSpan) error {
	w := placeholderWalker{b: b, i: i}
	return w.walk(nbins, spans)
}

// placeholderWalker walks JSON text that the scanner checked.
type placeholderWalker struct {
	b []byte
	i int
}

func (s *placeholderWalker) skipSpace() { s.i = jsontext.SkipSpace(s.b, s.i) }

// walk scans one value. An illegal placeholder is reported
// once the value is scanned, so that an enclosing placeholder can drop it.
func (s *placeholderWalker) walk(nbins int, spans *[]placeholderSpan) error {
	s.skipSpace()
	if s.i >= len(s.b) {
		return errJSON
	}
	switch s.b[s.i] {
	case '[':
		s.i++
		var illegal error
		for {
			s.skipSpace()
			if s.b[s.i] == ']' {
				s.i++
				return illegal
			}
			if err := s.walk(nbins, spans); err != nil {
				if !errors.Is(err, errIllegalAttachments) {
					return err
				}
				illegal = cmp.Or(illegal, err)
			}
			s.skipSpace()
			if s.b[s.i] == ',' {
				s.i++
			}
		}
	case '{':
		start := s.i
		mark := len(*spans)
		s.i++
		isPlaceholder, num, numOK, numText := false, 0, false, ""
		var illegal error
		for {
			s.skipSpace()
			if s.b[s.i] == '}' {
				s.i++
				break
			}
			kStart := s.i
			end, err := jsontext.SkipString(s.b, s.i)
			if err != nil {
				return err
			}
			s.i = end
			key, _ := unquote(s.b[kStart:s.i])
			s.skipSpace()
			s.i++ // ':'
			s.skipSpace()
			vStart := s.i
			// Every member is walked: when the object is no placeholder,
			// Node looks for placeholders in "_placeholder" and "num" too.
			if err := s.walk(nbins, spans); err != nil {
				if !errors.Is(err, errIllegalAttachments) {
					return err
				}
				illegal = cmp.Or(illegal, err)
			}
			switch key {
			case "_placeholder":
				isPlaceholder = string(s.b[vStart:s.i]) == "true"
			case "num":
				numText = string(s.b[vStart:s.i])
				num, numOK = placeholderNum(s.b[vStart:s.i])
			}
			s.skipSpace()
			if s.b[s.i] == ',' {
				s.i++
			}
		}
		if isPlaceholder {
			if !numOK || num >= nbins {
				if u, ok := unquote([]byte(numText)); ok {
					numText = u
				}
				return fmt.Errorf("%w: placeholder num %s with %d attachments", errIllegalAttachments, numText, nbins)
			}
			*spans = append((*spans)[:mark], placeholderSpan{start: start, end: s.i, num: num})
			return nil
		}
		return illegal
	default:
		end, err := jsontext.SkipValue(s.b, s.i)
		s.i = end
		return err
	}
}

// placeholderNum reads a placeholder's num: a non-negative integer.
func placeholderNum(b []byte) (int, bool) {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f < 0 || f != math.Trunc(f) || f > 1<<20 {
		return 0, false
	}
	return int(f), true
}
