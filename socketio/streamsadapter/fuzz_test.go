package streamsadapter

import (
	"encoding/base64"
	"testing"
)

// FuzzDecodeEntry reads stream entries as another node (or anybody with
// access to Redis) may write them: no panic, and a broadcast it accepts
// has an event and arguments that are JSON.
func FuzzDecodeEntry(f *testing.F) {
	f.Add("3", `{"packet":{"type":2,"data":["message","hi"]},"opts":{"rooms":[],"except":[],"flags":{}}}`)
	f.Add("4", `{"opts":{"rooms":["a"],"except":[]},"rooms":["r"]}`)
	f.Add("3", "gqZwYWNrZXSCpHR5cGUCpGRhdGGTpGZpbGXEAwECA4Shbs0BLKNiaWfOAAERcKNuZWfR/zihZss/4AAAAAAAAKRvcHRzg6Vyb29tc5CmZXhjZXB0kKVmbGFnc4A=")
	f.Fuzz(func(t *testing.T, typ, data string) {
		m, err := decodeEntry(map[string]any{"uid": "u", "nsp": "/", "type": typ, "data": data})
		if err != nil || m.packet == nil {
			return
		}
		for _, a := range m.packet.Args {
			if len(a.JSON) == 0 {
				t.Fatalf("empty argument in %q", data)
			}
		}
	})
}

// FuzzDecodeMsgpack reads pub/sub messages and sessions: no panic, and
// what it reads turns into JSON arguments or fails cleanly.
func FuzzDecodeMsgpack(f *testing.F) {
	for _, s := range []string{
		"hKNzaWSiczGjcGlkonAxpXJvb21zkqJzMaRyb29tpGRhdGGCpHVzZXKjYW5uoW4q",
		"gqZwYWNrZXSCpHR5cGUCpGRhdGGTpGZpbGXEAwECA4Shbs0BLKNiaWfOAAERcKNuZWfR/zihZss/4AAAAAAAAKRvcHRzg6Vyb29tc5CmZXhjZXB0kKVmbGFnc4A=",
	} {
		b, _ := base64.StdEncoding.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeMsgpack(b)
		if err != nil {
			return
		}
		_, _, _ = toArg(v)
		_, _ = decodeSession(base64.StdEncoding.EncodeToString(b))
		m := &message{nsp: "/"}
		if o := asObject(v); o != nil {
			_ = m.fromMap(o)
		}
	})
}
