package jsontext

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
)

// nodeCase is one question for node: op on the bytes hex (Buffer.from
// (hex, "hex")) or on the JavaScript string expression js.
type nodeCase struct {
	Op  string `json:"op"`
	Hex string `json:"hex"`
	JS  string `json:"js,omitempty"`
}

// nodeScript answers nodeCases, one string each:
//
//	quote:  JSON.stringify of the string (js, or the bytes as
//	        buf.toString("utf8") reads them), as hex of its UTF-8
//	parse:  JSON.parse(buf.toString("utf8")), a string, as hex of its
//	        WTF-8 (lone surrogates as three bytes)
//	valid:  whether JSON.parse(buf.toString("utf8")) accepts it
//	string: buf.toString("utf8") as hex of its WTF-8
//	msgpack: notepack.io's decoding of a msgpack str of the bytes, as hex
//	        of its WTF-8 ("no notepack.io" without node_modules)
const nodeScript = `
const B = h => Buffer.from(h, "hex").toString("utf8");
const wtf8 = s => {
  const out = [];
  for (const ch of s) { // by code point; a lone surrogate is one
    const c = ch.codePointAt(0);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | c >> 6, 0x80 | c & 63);
    else if (c < 0x10000) out.push(0xe0 | c >> 12, 0x80 | c >> 6 & 63, 0x80 | c & 63);
    else out.push(0xf0 | c >> 18, 0x80 | c >> 12 & 63, 0x80 | c >> 6 & 63, 0x80 | c & 63);
  }
  return Buffer.from(out).toString("hex");
};
let input = "";
process.stdin.on("data", d => input += d).on("end", () => {
  const out = JSON.parse(input).map(c => {
    const s = () => c.js ? eval(c.js) : B(c.hex);
    switch (c.op) {
    case "quote": return Buffer.from(JSON.stringify(s()), "utf8").toString("hex");
    case "parse": return wtf8(JSON.parse(s()));
    case "valid": try { JSON.parse(s()); return "true"; } catch { return "false"; }
    case "string": return wtf8(s());
    case "msgpack": {
      let np;
      try { np = require("notepack.io"); } catch { return "no notepack.io"; }
      const b = Buffer.from(c.hex, "hex");
      return wtf8(np.decode(Buffer.concat([Buffer.from([0xd9, b.length]), b])));
    }
    }
    throw new Error("op " + c.op);
  });
  process.stdout.write(JSON.stringify(out));
});
`

// askNode runs the cases through node. Without node the test is skipped,
// or fails under CI=true.
func askNode(t *testing.T, cases []nodeCase) []string {
	t.Helper()
	bin, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("missing prerequisite: node: %v", err)
		}
		t.Skipf("missing prerequisite (CI=true makes this a failure): node: %v", err)
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-e", nodeScript)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.Bytes())
	}
	var answers []string
	if err := json.Unmarshal(out, &answers); err != nil || len(answers) != len(cases) {
		t.Fatalf("node answered %q (%v)", out, err)
	}
	return answers
}

func hexOf(s string) string { return hex.EncodeToString([]byte(s)) }

func unhex(t *testing.T, h string) string {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
