package notepack

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// JavaScript text: how Node turns strings, numbers and dates into the JSON
// its clients receive, so that a broadcast decoded here reads as the same
// broadcast decoded by a Node node.
//
// Strings are carried as WTF-8: UTF-8 in which a lone UTF-16 surrogate
// (which a JavaScript string can hold, and UTF-8 cannot) is written as its
// three-byte encoding ED A0..BF xx, so that "\ud800" survives the trip
// through Redis. Node's notepack.io has no such encoding (it mangles lone
// surrogates), so a Node node reads such a string with U+FFFD in place of
// the surrogate; everything else is plain UTF-8 both ways.

const hexDigits = "0123456789abcdef"

// Kinds of characters nextChar finds.
const (
	charValid     = iota // valid UTF-8, copied as is
	charSurrogate        // a lone surrogate in WTF-8
	charPair             // a surrogate pair in WTF-8: one character
	charInvalid          // ill-formed bytes, read as U+FFFD
)

// nextChar decodes the non-ASCII character at b[i:] the way a JavaScript
// string would hold it: a valid UTF-8 sequence; a WTF-8 surrogate (a high
// and a low one in a row are one character, as in JavaScript); or, for
// ill-formed bytes, U+FFFD standing for the maximal ill-formed subpart, as
// Node's Buffer.toString("utf8") reads them. r is the character (the
// surrogate itself for a lone one).
func nextChar(b []byte, i int) (r rune, size, kind int) {
	if hi, ok := wtf8Surrogate(b, i); ok {
		if hi < 0xDC00 {
			if lo, ok := wtf8Surrogate(b, i+3); ok && lo >= 0xDC00 {
				return 0x10000 + (hi-0xD800)<<10 + (lo - 0xDC00), 6, charPair
			}
		}
		return hi, 3, charSurrogate
	}
	r, size = utf8.DecodeRune(b[i:])
	if r != utf8.RuneError || size > 1 {
		return r, size, charValid
	}
	return utf8.RuneError, maximalSubpart(b[i:]), charInvalid
}

// wtf8Surrogate reads a surrogate written as three bytes at b[i:].
func wtf8Surrogate(b []byte, i int) (rune, bool) {
	if i+2 < len(b) && b[i] == 0xED && b[i+1] >= 0xA0 && b[i+1] <= 0xBF && b[i+2]&0xC0 == 0x80 {
		return 0xD000 | rune(b[i+1]&0x3F)<<6 | rune(b[i+2]&0x3F), true
	}
	return 0, false
}

// maximalSubpart is the length of the ill-formed sequence at the start of
// b that one U+FFFD replaces (Unicode's "maximal subpart" practice, which
// the WHATWG Decoder and Node follow): a lead byte and the continuation
// bytes that could still have completed it, or one byte.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF) // the range of the second byte
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for n <= need && n < len(b) {
		if n == 1 && (b[1] < lo || b[1] > hi) {
			break
		}
		if n > 1 && b[n]&0xC0 != 0x80 {
			break
		}
		n++
	}
	return n
}

// validText reports whether b can be copied as is into WTF-8 text: valid
// UTF-8 (no surrogate, no stray byte).
func validText(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return utf8.Valid(b)
		}
	}
	return true
}

// AppendJSString appends b, normalized as a JavaScript string (see
// nextChar), as WTF-8.
func AppendJSString(dst, b []byte) []byte {
	if validText(b) {
		return append(dst, b...)
	}
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			dst = append(dst, b[i])
			i++
			continue
		}
		r, size, kind := nextChar(b, i)
		if kind == charInvalid || kind == charPair {
			dst = utf8.AppendRune(dst, r)
		} else {
			dst = append(dst, b[i:i+size]...)
		}
		i += size
	}
	return dst
}

// JSString is AppendJSString as a Go string.
func JSString(b []byte) string {
	if validText(b) {
		return string(b)
	}
	return string(AppendJSString(nil, b))
}

// AppendQuoted appends b (WTF-8, normalized on the way) as a JSON string
// the way JSON.stringify writes it: '"', '\\' and control characters
// escaped (\b \f \n \r \t, else \u00xx), lone surrogates as \udxxx,
// everything else as is.
func AppendQuoted(dst, b []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(b); {
		c := b[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, b[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size, kind := nextChar(b, i)
		switch kind {
		case charSurrogate:
			dst = append(dst, b[start:i]...)
			dst = append(dst, '\\', 'u', hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
			start = i + size
		case charPair, charInvalid:
			// Write the character they stand for.
			dst = append(dst, b[start:i]...)
			dst = utf8.AppendRune(dst, r)
			start = i + size
		}
		i += size
	}
	dst = append(dst, b[start:]...)
	return append(dst, '"')
}

// AppendQuotedString is AppendQuoted for a Go string.
func AppendQuotedString(dst []byte, s string) []byte {
	return AppendQuoted(dst, []byte(s))
}

// DecodeJSONString decodes the body of a JSON string literal (between its
// quotes, already checked by the scanner) into WTF-8 as JavaScript's
// JSON.parse sees it: an escaped surrogate pair is one character, a lone
// surrogate escape stays a surrogate, invalid raw bytes become U+FFFD.
func DecodeJSONString(dst, body []byte) []byte {
	for i := 0; i < len(body); {
		c := body[i]
		if c != '\\' {
			if c < utf8.RuneSelf {
				dst = append(dst, c)
				i++
				continue
			}
			r, size := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
				i += maximalSubpart(body[i:])
				continue
			}
			dst = append(dst, body[i:i+size]...)
			i += size
			continue
		}
		e := body[i+1]
		i += 2
		switch e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			u := hex4(body[i:])
			i += 4
			if u >= 0xD800 && u < 0xDC00 && i+6 <= len(body) && body[i] == '\\' && body[i+1] == 'u' {
				if lo := hex4(body[i+2:]); lo >= 0xDC00 && lo <= 0xDFFF {
					dst = utf8.AppendRune(dst, 0x10000+(u-0xD800)<<10+(lo-0xDC00))
					i += 6
					continue
				}
			}
			if u >= 0xD800 && u <= 0xDFFF {
				dst = append(dst, byte(0xE0|u>>12), byte(0x80|(u>>6)&0x3F), byte(0x80|u&0x3F))
			} else {
				dst = utf8.AppendRune(dst, u)
			}
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
	}
	return dst
}

// hex4 reads four hexadecimal digits (checked by the scanner).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// AppendJSNumber appends f as JSON.stringify writes a number: JavaScript's
// Number.prototype.toString (shortest round-trip digits, exponent from
// 1e21 up and below 1e-6, "1e+21", "5e-7"), -0 as 0, NaN and infinities as
// null.
func AppendJSNumber(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return append(dst, "null"...)
	case f == 0:
		return append(dst, '0')
	case f == math.Trunc(f) && math.Abs(f) < 1e15:
		return strconv.AppendInt(dst, int64(f), 10)
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // -d.ddde±xx
	if e[0] == '-' {
		dst = append(dst, '-')
		e = e[1:]
	}
	mark := 0
	for mark < len(e) && e[mark] != 'e' {
		mark++
	}
	var digits [24]byte
	k := 0
	for _, c := range e[:mark] {
		if c != '.' {
			digits[k] = c
			k++
		}
	}
	exp, _ := strconv.Atoi(string(e[mark+1:]))
	n := exp + 1 // the decimal point sits after n digits
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits[:k]...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:k]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits[:k]...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:k]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

// JSNumberString is a number as JavaScript's String(n) writes it (a room
// named by a number, a numeric map key).
func JSNumberString(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return string(AppendJSNumber(nil, f))
}

// maxTime is the largest time value of a JavaScript Date, in ms.
const maxTime = 8.64e15

// AppendJSDate appends what JSON.stringify writes for new Date(ms): the
// quoted toISOString(), or null for an invalid date.
func AppendJSDate(dst []byte, ms float64) []byte {
	if math.IsNaN(ms) || math.IsInf(ms, 0) || math.Abs(ms) > maxTime {
		return append(dst, "null"...)
	}
	t := time.UnixMilli(int64(math.Trunc(ms))).UTC()
	dst = append(dst, '"')
	switch y := t.Year(); {
	case y >= 0 && y <= 9999:
		dst = appendPadded(dst, y, 4)
	case y < 0:
		dst = append(dst, '-')
		dst = appendPadded(dst, -y, 6)
	default:
		dst = append(dst, '+')
		dst = appendPadded(dst, y, 6)
	}
	dst = append(dst, '-')
	dst = appendPadded(dst, int(t.Month()), 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, t.Day(), 2)
	dst = append(dst, 'T')
	dst = appendPadded(dst, t.Hour(), 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, t.Minute(), 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, t.Second(), 2)
	dst = append(dst, '.')
	dst = appendPadded(dst, t.Nanosecond()/1e6, 3)
	return append(dst, 'Z', '"')
}

func appendPadded(dst []byte, v, width int) []byte {
	var buf [12]byte
	s := strconv.AppendInt(buf[:0], int64(v), 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// JSDateString is a time as JavaScript's `new Date() + ""` writes it
// ("Tue Nov 14 2023 22:13:20 GMT+0000 (Coordinated Universal Time)"), in
// the local time zone. Go knows the zone's abbreviation, not the long name
// JavaScript shows, except for UTC.
func JSDateString(t time.Time) string {
	name, _ := t.Zone()
	if name == "UTC" {
		name = "Coordinated Universal Time"
	}
	return t.Format("Mon Jan 02 2006 15:04:05 GMT-0700") + " (" + name + ")"
}

// ValidWTF8 reports whether b is UTF-8 with lone surrogates at most (what
// AppendJSString writes).
func ValidWTF8(b []byte) bool {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		_, size, kind := nextChar(b, i)
		if kind == charInvalid || kind == charPair {
			return false
		}
		i += size
	}
	return true
}
