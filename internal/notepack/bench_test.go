package notepack

import "testing"

var benchArg = []byte(`{"from":"alice","text":"hello, everyone","at":1712345678901,"tags":["a","b"],"reply":null,"file":{"_placeholder":true,"num":0}}`)

// BenchmarkScanJSONToMsgpack transcodes an argument (scan, then write).
func BenchmarkScanJSONToMsgpack(b *testing.B) {
	var e Encoder
	bins := [][]byte{[]byte("abc")}
	b.SetBytes(int64(len(benchArg)))
	b.ReportAllocs()
	for b.Loop() {
		e.Buf = e.Buf[:0]
		if err := e.JSON(benchArg, bins); err != nil {
			b.Fatal(err)
		}
	}
}
