package jsontext

import (
	"strings"
	"testing"
)

// benchEvent is a chat event as a client sends it.
var benchEvent = []byte(`["chat message",{"from":"alice","text":"hello, everyone","at":1712345678901,"tags":["a","b"],"reply":null}]`)

// benchLarge is a larger event: text with escapes and non-ASCII
// characters, numbers, nesting.
var benchLarge = func() []byte {
	var b strings.Builder
	b.WriteString(`["history",[`)
	for i := range 40 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":1712345678901,"from":"bob","text":"Grüße \"quoted\" \\ line\nnext — 日本語 😀 \u00e9","score":-12.5e-3,"ok":true,"seen":[1,2,3]}`)
	}
	b.WriteString(`]]`)
	return []byte(b.String())
}()

func BenchmarkScanSplitArray(b *testing.B) {
	for _, bb := range []struct {
		name string
		in   []byte
	}{{"event", benchEvent}, {"large", benchLarge}} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := SplitArray(bb.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkScanCount(b *testing.B) {
	var counts []int32
	b.SetBytes(int64(len(benchLarge)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if counts, err = Count(benchLarge, counts[:0], placeholder); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkQuote(b *testing.B) {
	for _, bb := range []struct{ name, in string }{
		{"ascii", "hello, everyone: this is a chat message of ordinary length"},
		{"unicode", "Grüße — 日本語 😀 \"quoted\"\n and a tab\t."},
		{"ill-formed", "a\xffb\xed\xa0\x80c\xf0\x9f\x98d"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.SetBytes(int64(len(bb.in)))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendQuote(buf[:0], bb.in)
			}
		})
	}
}
