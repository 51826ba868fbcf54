package jsontext

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// Kinds of characters nextChar finds.
const (
	charValid     = iota // valid UTF-8, copied as is
	charSurrogate        // a lone surrogate in WTF-8
	charPair             // a surrogate pair in WTF-8: one character
	charInvalid          // ill-formed bytes, read as U+FFFD
)

// nextChar reads the non-ASCII character at s[i:] the way a JavaScript
// string holds it: a valid UTF-8 sequence; a WTF-8 surrogate (a high one
// followed by a low one is one character, as in JavaScript); or, for
// ill-formed bytes, U+FFFD standing for the maximal ill-formed subpart (a
// lead byte and the continuation bytes that could still have completed
// it, or one byte), as Node's Buffer.toString("utf8") reads them. r is the
// character for a pair or ill-formed bytes, the surrogate for a lone one.
func nextChar[T ~string | ~[]byte](s T, i int) (r rune, size, kind int) {
	c := s[i]
	l := leads[c]
	if l.need == 0 {
		return utf8.RuneError, 1, charInvalid
	}
	if c == 0xED {
		if h, ok := surrogateAt(s, i); ok {
			if h < 0xDC00 {
				if lo, ok := surrogateAt(s, i+3); ok && lo >= 0xDC00 {
					return 0x10000 + (h-0xD800)<<10 + (lo - 0xDC00), 6, charPair
				}
			}
			return h, 3, charSurrogate
		}
	}
	n := 1
	if i+1 < len(s) && s[i+1]-l.lo <= l.hi-l.lo {
		n = 2
		for n <= int(l.need) && i+n < len(s) && s[i+n]&0xC0 == 0x80 {
			n++
		}
	}
	if n == int(l.need)+1 {
		return 0, n, charValid
	}
	return utf8.RuneError, n, charInvalid
}

// lead describes a UTF-8 lead byte: the number of continuation bytes it
// needs (0: not a lead byte) and the range of the first one.
type lead struct{ need, lo, hi byte }

var leads = func() (t [256]lead) {
	for c := 0xC2; c <= 0xF4; c++ {
		switch {
		case c <= 0xDF:
			t[c] = lead{1, 0x80, 0xBF}
		case c == 0xE0:
			t[c] = lead{2, 0xA0, 0xBF}
		case c == 0xED: // not a surrogate (WTF-8 surrogates aside)
			t[c] = lead{2, 0x80, 0x9F}
		case c <= 0xEF:
			t[c] = lead{2, 0x80, 0xBF}
		case c == 0xF0:
			t[c] = lead{3, 0x90, 0xBF}
		case c <= 0xF3:
			t[c] = lead{3, 0x80, 0xBF}
		default: // F4
			t[c] = lead{3, 0x80, 0x8F}
		}
	}
	return t
}()

// surrogateAt reads a surrogate written as three bytes at s[i:].
func surrogateAt[T ~string | ~[]byte](s T, i int) (rune, bool) {
	if i+2 < len(s) && s[i] == 0xED && s[i+1] >= 0xA0 && s[i+1] <= 0xBF && s[i+2]&0xC0 == 0x80 {
		return 0xD000 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F), true
	}
	return 0, false
}

// quoteASCII marks the ASCII bytes JSON.stringify writes as they are.
var quoteASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// AppendQuote appends s (WTF-8) as a JSON string the way JSON.stringify
// writes the JavaScript string it stands for: '"', '\\' and control
// characters escaped (\b \f \n \r \t, else \u00xx), a lone surrogate as
// \udxxx, a surrogate pair as the character, ill-formed bytes as U+FFFD
// (one per maximal subpart), everything else as is.
func AppendQuote[T ~string | ~[]byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if quoteASCII[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
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
		r, size, kind := nextChar(s, i)
		if kind != charValid {
			dst = append(dst, s[start:i]...)
			if kind == charSurrogate {
				dst = append(dst, '\\', 'u', hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
			} else {
				dst = utf8.AppendRune(dst, r)
			}
			start = i + size
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
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

// AppendJSString appends b, read as a JavaScript string (see nextChar), as
// WTF-8: ill-formed bytes become U+FFFD, a surrogate pair its character.
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

// Unquote decodes a JSON string literal (quotes included), as JSON.parse
// reads it from text that Node decoded as UTF-8, into WTF-8 (see
// AppendUnquoted). ok is false if lit is not exactly one string literal.
func Unquote(lit []byte) (s string, ok bool) {
	if len(lit) < 2 || lit[0] != '"' {
		return "", false
	}
	if end, err := SkipString(lit, 0); err != nil || end != len(lit) {
		return "", false
	}
	body := lit[1 : len(lit)-1]
	for _, c := range body {
		if c == '\\' {
			return string(AppendUnquoted(nil, body)), true
		}
	}
	if validText(body) {
		return string(body), true
	}
	return string(AppendUnquoted(nil, body)), true
}

// AppendUnquoted decodes the body of a JSON string literal (between its
// quotes, already checked by the scanner) into WTF-8 as JavaScript's
// JSON.parse sees it: an escaped surrogate pair is one character, a lone
// surrogate escape stays a surrogate, ill-formed raw bytes (a WTF-8
// surrogate among them: raw text is decoded as UTF-8 first) become U+FFFD
// per maximal subpart.
func AppendUnquoted(dst, body []byte) []byte {
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
				if _, n, kind := nextChar(body, i); kind == charInvalid {
					size = n
				} // else a WTF-8 surrogate: ill-formed bytes, one by one, in UTF-8
				i += size
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

// NextUTF8 reads the non-ASCII bytes at b[i:] the way Node's
// Buffer.toString("utf8") does: a valid UTF-8 sequence (ok, its size), or
// the maximal ill-formed subpart that one U+FFFD stands for (a lead byte
// and the continuation bytes that could still have completed it, or one
// byte). Unlike nextChar, a surrogate written in three bytes is ill-formed
// (ED is followed by 80–9F only): Node decodes it as three U+FFFD.
func NextUTF8(b []byte, i int) (size int, ok bool) {
	l := leads[b[i]]
	if l.need == 0 {
		return 1, false
	}
	n := 1
	if i+1 < len(b) && b[i+1]-l.lo <= l.hi-l.lo {
		n = 2
		for n <= int(l.need) && i+n < len(b) && b[i+n]&0xC0 == 0x80 {
			n++
		}
	}
	return n, n == int(l.need)+1
}

// AppendUTF8 appends b decoded as Node's Buffer.toString("utf8") decodes
// it (see NextUTF8): valid UTF-8 as is, each maximal ill-formed subpart as
// one U+FFFD.
func AppendUTF8(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			dst = append(dst, b[i])
			i++
			continue
		}
		n, ok := NextUTF8(b, i)
		if ok {
			dst = append(dst, b[i:i+n]...)
		} else {
			dst = append(dst, "\uFFFD"...)
		}
		i += n
	}
	return dst
}
