package engineio

// WebSocket compression: the permessage-deflate extension (RFC 7692).
//
// The server always negotiates server_no_context_takeover and
// client_no_context_takeover (RFC 7692 lets a server add both to any
// response; Chromium, Firefox and Node's ws accept them). Each message is
// then compressed on its own, so that
//
//   - a connection keeps no compression state between messages: an idle
//     connection with compression costs what one without does, where a
//     flate writer kept per connection (context takeover) costs hundreds of
//     kilobytes (docs/ARCHITECTURE.md, "What compression costs");
//   - a broadcast is compressed once, by the first flush that sends it,
//     and its compressed frame is shared by every recipient that
//     negotiated compression (deflateCache), as its uncompressed payload is
//     shared by the others;
//   - a compressed message from a client is inflated with a pooled reader,
//     bounded by MaxBufferSize (its decompressed size; a deflate bomb is
//     refused with 1009 once it passes the bound, having cost its sender's
//     connection only the inflation of MaxBufferSize bytes).

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// deflateResponse is the extension the server answers an acceptable offer
// with.
const deflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// negotiateDeflate reads the client's Sec-WebSocket-Extensions offers and
// reports whether one of them is a permessage-deflate the server accepts:
// any of its parameters (server_no_context_takeover,
// client_no_context_takeover, client_max_window_bits with or without a
// value, server_max_window_bits=15) once each, with valid values. An offer
// asking for a smaller server window (server_max_window_bits below 15:
// Go's flate always writes with a 32 KiB window), or with an unknown,
// repeated or invalid parameter, is declined, and the next one considered;
// without an acceptable offer the connection goes on uncompressed.
func negotiateDeflate(h http.Header) bool {
	for _, line := range h.Values("Sec-WebSocket-Extensions") {
		for offer := range strings.SplitSeq(line, ",") {
			if acceptableDeflateOffer(offer) {
				return true
			}
		}
	}
	return false
}

// acceptableDeflateOffer reports whether offer (one element of the
// extension list: a name and its parameters) is a permessage-deflate the
// server accepts.
func acceptableDeflateOffer(offer string) bool {
	parts := strings.Split(offer, ";")
	if strings.TrimSpace(parts[0]) != "permessage-deflate" {
		return false
	}
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		name, value, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		name = strings.TrimSpace(name)
		value = strings.Trim(strings.TrimSpace(value), `"`)
		if seen[name] {
			return false
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if hasValue {
				return false
			}
		case "client_max_window_bits":
			// Any window the client compresses with is inflated by a
			// 32 KiB one.
			if hasValue && !validWindowBits(value) {
				return false
			}
		case "server_max_window_bits":
			if !hasValue || !validWindowBits(value) || value != "15" {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func validWindowBits(v string) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n >= 8 && n <= 15 && strconv.Itoa(n) == v
}

// deflateLevel is the level messages are compressed at: flate.BestSpeed,
// chosen by BenchmarkDeflate (docs/BENCHMARKS.md): on chat messages and
// JSON documents it compresses within a few percent of the default level,
// at a fraction of its CPU, and its writer is the smallest.
const deflateLevel = flate.BestSpeed

// deflater is a pooled flate writer and the buffer it writes to.
type deflater struct {
	w   *flate.Writer
	buf bytes.Buffer
}

var deflaterPool = sync.Pool{New: func() any {
	d := &deflater{}
	d.w, _ = flate.NewWriter(&d.buf, deflateLevel)
	return d
}}

// deflateTail is what a sync flush ends with, and what a message's
// compressed payload leaves out (RFC 7692 §7.2.1).
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// deflate compresses prefix and payload as one message with no context
// takeover, into a new slice of its own.
func deflate(prefix, payload []byte) []byte {
	d := deflaterPool.Get().(*deflater)
	d.buf.Reset()
	d.w.Reset(&d.buf)
	_, _ = d.w.Write(prefix)
	_, _ = d.w.Write(payload)
	_ = d.w.Flush()
	b := bytes.TrimSuffix(d.buf.Bytes(), deflateTail)
	out := bytes.Clone(b)
	if d.buf.Cap() > 64<<10 {
		d.buf = bytes.Buffer{} // the writer (1.2 MB) is kept, not a big buffer
	}
	deflaterPool.Put(d)
	return out
}

// deflateCache keeps the compressed form of the messages sent lately, so
// that a broadcast is compressed once for all its recipients: the flushes
// of the recipients that negotiated compression find it here by the
// identity of its payload (a Message's bytes are shared and never
// modified, and the entry keeps them alive, so that their address is not
// reused while it is here). It is direct-mapped: deflateSlots entries,
// each with its own lock, which a flush holds while it compresses, so that
// flushes of the same broadcast on other goroutines wait for its result
// rather than compress it again. Payloads over deflateCacheMax are
// compressed for each recipient. What it holds is bounded by deflateSlots
// × deflateCacheMax, twice (payloads and their compressed forms).
type deflateCache struct {
	slots [deflateSlots]deflateSlot
	runs  atomic.Uint64 // payloads compressed for the cache (its misses)
}

const (
	deflateSlots    = 128
	deflateCacheMax = 64 << 10
)

type deflateSlot struct {
	mu  sync.Mutex
	src []byte
	z   []byte
	_   [16]byte // apart from the next slot's lock
}

// get returns payload compressed (without prefix: the cache holds
// payloads sent as they are).
func (dc *deflateCache) get(payload []byte) []byte {
	if len(payload) > deflateCacheMax {
		return deflate(nil, payload)
	}
	s := &dc.slots[slotOf(payload)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.src) == len(payload) && unsafe.SliceData(s.src) == unsafe.SliceData(payload) {
		return s.z
	}
	z := deflate(nil, payload)
	dc.runs.Add(1)
	s.src, s.z = payload, z
	return z
}

// slotOf is the deflateCache slot of a payload, by its address and length.
// Two payloads in one slot evict each other (each is compressed again when
// their sends alternate); with 128 slots that is rare and costs only time.
func slotOf(payload []byte) uintptr {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(payload)))
	return ((p >> 4) ^ (p >> 13) ^ uintptr(len(payload))) % deflateSlots
}

// inflateTail ends a message's compressed payload: the tail the sender
// left out (RFC 7692 §7.2.2), then an empty final block, so that the
// reader ends with io.EOF.
var inflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// twoSlices reads a, then b; it is a flate.Reader (io.ByteReader too), so
// that flate reads it without a bufio.Reader of its own.
type twoSlices struct{ a, b []byte }

func (t *twoSlices) Read(p []byte) (int, error) {
	if len(t.a) == 0 {
		t.a, t.b = t.b, nil
	}
	if len(t.a) == 0 {
		return 0, io.EOF
	}
	n := copy(p, t.a)
	t.a = t.a[n:]
	return n, nil
}

func (t *twoSlices) ReadByte() (byte, error) {
	if len(t.a) == 0 {
		t.a, t.b = t.b, nil
	}
	if len(t.a) == 0 {
		return 0, io.EOF
	}
	c := t.a[0]
	t.a = t.a[1:]
	return c, nil
}

// inflater is a pooled flate reader and its input.
type inflater struct {
	in twoSlices
	r  io.ReadCloser
}

var inflaterPool = sync.Pool{New: func() any {
	f := &inflater{}
	f.r = flate.NewReader(&f.in)
	return f
}}

var (
	errInflateTooBig = errors.New("decompressed message over maxHttpBufferSize")
	errInflateBad    = errors.New("bad compressed data")
)

// inflate decompresses a message's compressed payload, refusing it with
// errInflateTooBig once it passes limit bytes: what it allocates grows with
// what the data decompresses to, up to limit, never beyond.
func inflate(z []byte, limit int64) ([]byte, error) {
	f := inflaterPool.Get().(*inflater)
	defer inflaterPool.Put(f)
	f.in = twoSlices{a: z, b: inflateTail}
	if err := f.r.(flate.Resetter).Reset(&f.in, nil); err != nil {
		return nil, errInflateBad
	}
	out := make([]byte, 0, min(limit+1, int64(2*len(z)+512)))
	for {
		if len(out) == cap(out) {
			if int64(len(out)) > limit {
				return nil, errInflateTooBig
			}
			// Doubling (append grows big slices by a quarter, which
			// would allocate five times the limit on the way to it).
			grown := make([]byte, len(out), min(2*int64(cap(out)), limit+1))
			copy(grown, out)
			out = grown
		}
		n, err := f.r.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if int64(len(out)) > limit {
			return nil, errInflateTooBig
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, errInflateBad
		}
	}
}

// fillDeflate frames msgs into the flush buffer for a connection that
// negotiated compression: the messages of PerMessageDeflateThreshold bytes
// or more, but those marked Uncompressed, go compressed (RSV1 set), a
// broadcast's payload compressed once for all (deflateCache). It runs on
// the flush, as fill.
func (c *wsConn) fillDeflate(msgs []Message, protocol int, b64 bool) {
	fb := c.fb
	srv := c.sess.srv
	threshold := srv.opts.PerMessageDeflateThreshold
	var n, from, to uint64
	for _, m := range msgs {
		op, payload, prefix := byte(opText), m.b, []byte(nil)
		switch {
		case !m.binary:
		case protocol == 4:
			op = opBinary
		case b64:
			payload = append([]byte("b4"), base64.StdEncoding.EncodeToString(m.b)...)
		default:
			op, prefix = opBinary, v3BinaryPrefix
		}
		size := len(payload) + len(prefix)
		if m.nocomp || size < threshold {
			fb.frame(op, payload, prefix)
			continue
		}
		var z []byte
		if prefix == nil && (!m.binary || protocol == 4) {
			z = srv.deflateCache.get(payload)
		} else {
			z = deflate(prefix, payload) // this connection's own bytes
		}
		fb.frameFirst(0xC0|op, z, nil)
		n, from, to = n+1, from+uint64(size), to+uint64(len(z))
	}
	if n > 0 {
		srv.stats.deflatedMsgs.Add(n)
		srv.stats.deflatedIn.Add(from)
		srv.stats.deflatedBytes.Add(to)
	}
}
