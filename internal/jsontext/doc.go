// Package jsontext reads and writes JSON text as JavaScript does, for
// socketio, its msgpack parser and its Redis adapters: one scanner that
// checks JSON text strictly (RFC 8259, as JSON.parse) without decoding
// it, so that arguments are forwarded byte for byte, and one quoting
// routine that writes a string as JSON.stringify does.
//
// Strings are WTF-8: UTF-8 in which a lone UTF-16 surrogate (which a
// JavaScript string can hold and UTF-8 cannot) is written as its
// three-byte encoding ED A0..BF xx, so that "\ud800" read from a client
// can be written back. Other ill-formed bytes stand for U+FFFD, one per
// maximal ill-formed subpart, as Node's Buffer.toString("utf8") (the
// WHATWG decoder) reads them.
//
// The functions keep no state; they are safe for concurrent use.
package jsontext
