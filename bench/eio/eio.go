// Package eio is a minimal Socket.IO v5 client over Engine.IO v4, written for
// load generation: it speaks the wire protocol directly over WebSocket
// (gorilla/websocket) and HTTP long-polling (net/http), joins the main
// namespace (or another, with the Dial…In functions), answers the server's pings, and hands every EVENT packet to a
// callback without decoding it into Go values.
//
// It is not a general client: no acknowledgements, no binary attachments, no
// reconnection, no transport upgrade. The benchmark (bench/loadgen) and the
// root package's testing.B benchmarks use it.
package eio

import (
	"bytes"
	"errors"
	"strconv"
)

// Engine.IO v4 packet types as they appear on the wire (first byte).
const (
	typeOpen    = '0'
	typeClose   = '1'
	typePing    = '2'
	typePong    = '3'
	typeMessage = '4'
	typeNoop    = '6'
)

// IPBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h): bind() to a
// source address without reserving a port, so the port is picked at
// connect() time per destination and each source address has the whole
// ephemeral range.
const IPBindAddressNoPort = 24

// recordSeparator separates packets in a long-polling payload (Engine.IO v4).
const recordSeparator = 0x1e

// ErrClosed is returned by read loops when the server closed the session
// (Engine.IO CLOSE, Socket.IO DISCONNECT, WebSocket close or EOF).
var ErrClosed = errors.New("eio: session closed by the server")

// sidFromJSON extracts the "sid" string from an OPEN or CONNECT payload such
// as {"sid":"abc","upgrades":[]...} without a JSON decoder (sids are
// base64url, never escaped).
func sidFromJSON(b []byte) (string, error) {
	const key = `"sid":"`
	for i := 0; i+len(key) <= len(b); i++ {
		if string(b[i:i+len(key)]) != key {
			continue
		}
		rest := b[i+len(key):]
		for j, c := range rest {
			if c == '"' {
				return string(rest[:j]), nil
			}
		}
		break
	}
	return "", errors.New("eio: no sid in " + strconv.Quote(string(b)))
}

// EventPrefix is the start of every `message` event the chat server sends to
// its clients: 42["message",...
const EventPrefix = `42["message",`

// AppendUserMessage appends the Socket.IO EVENT packet the tutorial's page
// sends, 42["user-message","text"], to dst. text must not need JSON escaping
// (the load generator only sends [0-9a-z.] characters).
func AppendUserMessage(dst []byte, text []byte) []byte {
	dst = append(dst, `42["user-message","`...)
	dst = append(dst, text...)
	return append(dst, `"]`...)
}

// connectPacket is the Socket.IO CONNECT packet for namespace nsp ("" or
// "/" is the main one): 40, or 40/nsp, for another.
func connectPacket(nsp string) []byte {
	if nsp == "" || nsp == "/" {
		return []byte("40")
	}
	return []byte("40" + nsp + ",")
}

// AppendUserMessageIn is AppendUserMessage in namespace nsp: 42/nsp,[...]
// for a namespace other than the main one.
func AppendUserMessageIn(dst []byte, nsp string, text []byte) []byte {
	if nsp == "" || nsp == "/" {
		return AppendUserMessage(dst, text)
	}
	dst = append(dst, "42"...)
	dst = append(dst, nsp...)
	dst = append(dst, `,["user-message","`...)
	dst = append(dst, text...)
	return append(dst, `"]`...)
}

// MessageText returns the string argument of a `42["message","text"]` packet
// (without JSON unescaping), or false when pkt is another packet. The
// packet may name a namespace (42/nsp,["message","text"]): its name is
// skipped (a client is in one namespace).
func MessageText(pkt []byte) ([]byte, bool) {
	if len(pkt) < 2 || pkt[0] != '4' || pkt[1] != '2' {
		return nil, false
	}
	rest := pkt[2:]
	if len(rest) > 0 && rest[0] == '/' {
		i := bytes.IndexByte(rest, ',')
		if i < 0 {
			return nil, false
		}
		rest = rest[i+1:]
	}
	const args = `["message",`
	if len(rest) < len(args)+3 || string(rest[:len(args)]) != args {
		return nil, false
	}
	rest = rest[len(args):]
	if rest[0] != '"' {
		return nil, false
	}
	rest = rest[1:]
	for i, c := range rest {
		if c == '"' {
			return rest[:i], true
		}
		if c == '\\' {
			return nil, false
		}
	}
	return nil, false
}
