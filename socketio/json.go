package socketio

import "github.com/chatio/socketio-chat/internal/jsontext"

// MaxDepth bounds the nesting of arrays and objects in a packet's JSON
// (the argument array is level 1). JSON.parse in Node goes much deeper,
// but forwarding thousands of levels only hands every recipient a parser
// stress test (it overflows the stack of Node's own server); no chat needs
// more than a few levels.
const MaxDepth = jsontext.MaxDepth

// JSON text is checked, split, quoted and unquoted by internal/jsontext,
// shared with the msgpack parser and the Redis adapters.
var (
	errJSON     = jsontext.ErrSyntax
	errTooDeep  = jsontext.ErrTooDeep
	errNotArray = jsontext.ErrNotArray
)

// splitArray checks that b is one JSON array and returns the spans of its
// elements (without surrounding whitespace).
func splitArray(b []byte) ([][]byte, error) { return jsontext.SplitArray(b) }

// validValue checks that b is exactly one JSON value.
func validValue(b []byte) error { return jsontext.Valid(b) }

// unquote decodes a JSON string literal (quotes included) the way
// JavaScript sees it, as WTF-8 (see internal/jsontext).
func unquote(lit []byte) (string, bool) { return jsontext.Unquote(lit) }

// appendQuote appends s as a JSON string the way JSON.stringify writes it.
func appendQuote(b []byte, s string) []byte { return jsontext.AppendQuote(b, s) }
