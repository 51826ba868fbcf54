package engineio

// JSONP polling, as Node's engine.io 6 has it (transports/polling-jsonp.js),
// for clients that can only load scripts (engine.io-client's JSONP
// transport of old browsers). A handshake with a "j" query parameter makes
// the session a JSONP one for its whole life, whatever later requests
// carry: each GET is answered with `___eio[j]("payload");`, the payload a
// JavaScript string literal, and each POST is a form with the payload in
// its "d" field. Node enables it by default, and so do we.

import (
	"bytes"
	"unicode/utf8"

	"github.com/chatio/socketio-chat/internal/jsontext"
)

// maxJSONPIndexDigits bounds the j parameter, the index of the client's
// callback in its ___eio array.
const maxJSONPIndexDigits = 10

// jsonpHead returns the start of a JSONP response for the index j,
// `___eio[j](`, and whether j is an index: 1 to 10 digits. (Node keeps the
// digits of any j, and answers `___eio[](` for one without digits, which is
// not JavaScript; we refuse such handshakes.)
func jsonpHead(j string) ([]byte, bool) {
	if len(j) == 0 || len(j) > maxJSONPIndexDigits {
		return nil, false
	}
	for i := 0; i < len(j); i++ {
		if j[i] < '0' || j[i] > '9' {
			return nil, false
		}
	}
	head := make([]byte, 0, len("___eio[](")+len(j))
	head = append(head, "___eio["...)
	head = append(head, j...)
	return append(head, "]("...), true
}

// appendJSONP appends the JSONP response of a payload: head, the payload as
// a JavaScript string literal, and `);`. The literal is what Node writes:
// JSON.stringify's escapes (`\"`, `\\`, `\b`, `\t`, `\n`, `\f`, `\r`, and
// `\u00xx` for the other control characters), and U+2028 and U+2029
// escaped too, since JavaScript before ES2019 does not allow them in a
// string literal. Bytes that are not UTF-8 are written as U+FFFD, one per
// maximal ill-formed subpart (as Node's Buffer.toString).
func appendJSONP(dst, head, payload []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, head...)
	dst = append(dst, '"')
	for i := 0; i < len(payload); {
		c := payload[i]
		if c >= utf8.RuneSelf {
			size, ok := jsontext.NextUTF8(payload, i)
			switch {
			case !ok:
				dst = append(dst, "\uFFFD"...) // one per maximal ill-formed subpart, as Node
			case size == 3 && payload[i] == 0xE2 && payload[i+1] == 0x80 && payload[i+2]&0xFE == 0xA8:
				dst = append(dst, `\u202`...) // U+2028, U+2029
				dst = append(dst, hex[payload[i+2]&0x0F])
			default:
				dst = append(dst, payload[i:i+size]...)
			}
			i += size
			continue
		}
		switch c {
		case '"':
			dst = append(dst, `\"`...)
		case '\\':
			dst = append(dst, `\\`...)
		case '\b':
			dst = append(dst, `\b`...)
		case '\t':
			dst = append(dst, `\t`...)
		case '\n':
			dst = append(dst, `\n`...)
		case '\f':
			dst = append(dst, `\f`...)
		case '\r':
			dst = append(dst, `\r`...)
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				dst = append(dst, c)
			}
		}
		i++
	}
	return append(dst, `");`...)
}

// jsonpMaxFields is how many fields of a form Node's querystring.parse
// reads (its maxKeys); a "d" after them is not seen.
const jsonpMaxFields = 1000

// jsonpData returns the payload of a JSONP POST body, as Node reads it:
// the form's "d" field (querystring.parse: '+' is a space, %XX a byte, a
// malformed escape is kept as it is), with the newlines the client escaped
// restored: `\n` becomes a newline and `\\n` becomes `\n`. It reports false
// when the form has no "d" field, or more than one (Node then ignores the
// body).
func jsonpData(body []byte) ([]byte, bool) {
	var (
		d     []byte
		found int
	)
	for n := 0; len(body) > 0 && n < jsonpMaxFields; n++ {
		field := body
		if i := bytes.IndexByte(body, '&'); i >= 0 {
			field, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		key, value := field, []byte(nil)
		if i := bytes.IndexByte(field, '='); i >= 0 {
			key, value = field[:i], field[i+1:]
		}
		if !formKeyIsD(key) {
			continue
		}
		found++
		d = formUnescape(value)
	}
	if found != 1 {
		return nil, false
	}
	return jsonpNewlines(d), true
}

// formKeyIsD reports whether a form field's name decodes to "d".
func formKeyIsD(key []byte) bool {
	switch len(key) {
	case 1:
		return key[0] == 'd'
	case 3:
		return key[0] == '%' && key[1] == '6' && key[2] == '4'
	}
	return false
}

// formUnescape decodes a form value as querystring.unescape does: '+' is a
// space, %XX with two hex digits a byte, and anything else is kept.
func formUnescape(v []byte) []byte {
	if bytes.IndexByte(v, '%') < 0 && bytes.IndexByte(v, '+') < 0 {
		return bytes.Clone(v)
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '+':
			out = append(out, ' ')
		case c == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]):
			out = append(out, unhex(v[i+1])<<4|unhex(v[i+2]))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// jsonpNewlines restores the newlines of a JSONP payload as Node does,
// with its two replacements: /(\\)?\\n/g (`\n` becomes a newline, `\\n`
// stays), then /\\\\n/g (`\\n` becomes `\n`). The client escaped a newline
// as `\n` and a `\n` as `\\n`. b is owned by the caller, and reused.
func jsonpNewlines(b []byte) []byte {
	if bytes.IndexByte(b, '\\') < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		switch {
		case b[i] == '\\' && i+2 < len(b) && b[i+1] == '\\' && b[i+2] == 'n':
			out = append(out, b[i:i+3]...)
			i += 3
		case b[i] == '\\' && i+1 < len(b) && b[i+1] == 'n':
			out = append(out, '\n')
			i += 2
		default:
			out = append(out, b[i])
			i++
		}
	}
	b, out = out, b[:0]
	for i := 0; i < len(b); {
		if b[i] == '\\' && i+2 < len(b) && b[i+1] == '\\' && b[i+2] == 'n' {
			out = append(out, '\\', 'n')
			i += 3
			continue
		}
		out = append(out, b[i])
		i++
	}
	return out
}
