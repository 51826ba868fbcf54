package socketio

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of arrays and objects in a packet's JSON
// (the argument array is level 1). JSON.parse in Node goes much deeper,
// but forwarding thousands of levels only hands every recipient a parser
// stress test (it overflows the stack of Node's own server); no chat needs
// more than a few levels.
const MaxDepth = 128

var (
	errJSON     = errors.New("invalid JSON")
	errTooDeep  = errors.New("JSON nested too deeply")
	errNotArray = errors.New("payload is not an array")
)

// scanner checks JSON text strictly (RFC 8259, as JSON.parse) and finds
// the top-level elements of an array without decoding them.
type scanner struct {
	b     []byte
	i     int
	depth int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) skipSpace() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

// splitArray checks that b is one JSON array and returns the spans of its
// elements (without surrounding whitespace).
func splitArray(b []byte) ([][]byte, error) {
	s := scanner{b: b}
	s.skipSpace()
	if s.i >= len(b) || b[s.i] != '[' {
		return nil, errNotArray
	}
	s.i++
	s.depth = 1
	var elems [][]byte
	s.skipSpace()
	if s.i < len(b) && b[s.i] == ']' {
		s.i++
	} else {
		for {
			s.skipSpace()
			start := s.i
			if err := s.value(); err != nil {
				return nil, err
			}
			elems = append(elems, b[start:s.i])
			s.skipSpace()
			if s.i >= len(b) {
				return nil, errJSON
			}
			if b[s.i] == ',' {
				s.i++
				continue
			}
			if b[s.i] != ']' {
				return nil, errJSON
			}
			s.i++
			break
		}
	}
	s.skipSpace()
	if s.i != len(b) {
		return nil, errJSON
	}
	return elems, nil
}

// validValue checks that b is exactly one JSON value.
func validValue(b []byte) error {
	s := scanner{b: b}
	s.skipSpace()
	if err := s.value(); err != nil {
		return err
	}
	s.skipSpace()
	if s.i != len(b) {
		return errJSON
	}
	return nil
}

// value scans one value at s.i.
func (s *scanner) value() error {
	if s.i >= len(s.b) {
		return errJSON
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		_, err := s.str()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return errJSON
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return errJSON
	}
	s.i += len(lit)
	return nil
}

func (s *scanner) enter() error {
	s.depth++
	if s.depth > MaxDepth {
		return errTooDeep
	}
	return nil
}

func (s *scanner) array() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.i++
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
		return nil
	}
	for {
		s.skipSpace()
		if err := s.value(); err != nil {
			return err
		}
		s.skipSpace()
		if s.i >= len(s.b) {
			return errJSON
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return nil
		default:
			return errJSON
		}
	}
}

func (s *scanner) object() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.i++
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.depth--
		return nil
	}
	for {
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return errJSON
		}
		if _, err := s.str(); err != nil {
			return err
		}
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errJSON
		}
		s.i++
		s.skipSpace()
		if err := s.value(); err != nil {
			return err
		}
		s.skipSpace()
		if s.i >= len(s.b) {
			return errJSON
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			s.depth--
			return nil
		default:
			return errJSON
		}
	}
}

// str scans a string and reports whether it has escapes.
func (s *scanner) str() (escaped bool, err error) {
	s.i++ // opening quote
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return escaped, errJSON
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex4(s.b[s.i+2:s.i+6]) {
					return escaped, errJSON
				}
				s.i += 6
			default:
				return escaped, errJSON
			}
		case c < 0x20:
			return escaped, errJSON
		default:
			s.i++
		}
	}
	return escaped, errJSON
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func (s *scanner) number() error {
	b := s.b
	if b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(b) {
		return errJSON
	}
	switch {
	case b[s.i] == '0':
		s.i++
	case b[s.i] >= '1' && b[s.i] <= '9':
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
	default:
		return errJSON
	}
	if s.i < len(b) && b[s.i] == '.' {
		s.i++
		start := s.i
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
		if s.i == start {
			return errJSON
		}
	}
	if s.i < len(b) && (b[s.i] == 'e' || b[s.i] == 'E') {
		s.i++
		if s.i < len(b) && (b[s.i] == '+' || b[s.i] == '-') {
			s.i++
		}
		start := s.i
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
		if s.i == start {
			return errJSON
		}
	}
	return nil
}

// unquote decodes a JSON string literal (quotes included) the way
// JavaScript sees it, as WTF-8: a lone surrogate escape becomes its
// three-byte (invalid UTF-8) encoding, so that it can be escaped back.
func unquote(lit []byte) (string, bool) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", false
	}
	body := lit[1 : len(lit)-1]
	i := 0
	for i < len(body) && body[i] != '\\' {
		i++
	}
	if i == len(body) {
		return string(body), true
	}
	out := make([]byte, 0, len(body))
	out = append(out, body[:i]...)
	for i < len(body) {
		c := body[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(body) {
			return "", false
		}
		switch body[i+1] {
		case '"', '\\', '/':
			out = append(out, body[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+6 > len(body) {
				return "", false
			}
			r, err := strconv.ParseUint(string(body[i+2:i+6]), 16, 16)
			if err != nil {
				return "", false
			}
			i += 6
			if utf16.IsSurrogate(rune(r)) && r < 0xDC00 && i+6 <= len(body) && body[i] == '\\' && body[i+1] == 'u' {
				if r2, err := strconv.ParseUint(string(body[i+2:i+6]), 16, 16); err == nil && r2 >= 0xDC00 && r2 <= 0xDFFF {
					out = utf8.AppendRune(out, utf16.DecodeRune(rune(r), rune(r2)))
					i += 6
					continue
				}
			}
			out = appendWTF8(out, rune(r))
			continue
		default:
			return "", false
		}
		i += 2
	}
	return string(out), true
}

// appendWTF8 appends r in UTF-8, surrogates included (which UTF-8 forbids,
// and JavaScript strings allow).
func appendWTF8(b []byte, r rune) []byte {
	if r >= 0xD800 && r <= 0xDFFF {
		return append(b, byte(0xE0|r>>12), byte(0x80|(r>>6)&0x3F), byte(0x80|r&0x3F))
	}
	return utf8.AppendRune(b, r)
}

// appendQuote appends s as a JSON string the way JSON.stringify writes it:
// only '"', '\\' and control characters escaped, lone surrogates (WTF-8)
// as \uXXXX escapes.
func appendQuote(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			// A WTF-8 surrogate (three bytes ED A0..BF xx), or a stray byte.
			b = append(b, s[start:i]...)
			if i+2 < len(s) && c == 0xED && s[i+1] >= 0xA0 && s[i+1] <= 0xBF && s[i+2]&0xC0 == 0x80 {
				u := rune(c&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F)
				b = append(b, `\u`...)
				b = append(b, hexDigits[u>>12&0xF], hexDigits[u>>8&0xF], hexDigits[u>>4&0xF], hexDigits[u&0xF])
				i += 3
			} else {
				b = append(b, `\ufffd`...)
				i++
			}
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"
