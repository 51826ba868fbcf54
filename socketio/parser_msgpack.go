package socketio

import (
	"errors"
	"fmt"
	"math"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/internal/jsontext"
	"github.com/chatio/socketio-chat/internal/notepack"
)

// socket.io-msgpack-parser 3.0.2: each packet is one binary Engine.IO
// message, the msgpack encoding (notepack.io's) of the packet object
// {type, nsp, data, id}; socket.io-client adds "options", which is
// ignored. Binary values travel inside the msgpack (bin), so there are no
// attachments and no BINARY_EVENT/BINARY_ACK types.
//
// Arguments are transcoded to Arg (JSON text, binary values as
// placeholders and attachments) on arrival and back on the way out, with
// notepack.io's rules (internal/notepack): a msgpack client's values read
// as JSON.stringify would write them in Node (undefined as null in arrays
// and left out of objects, dates as ISO strings, bin and ArrayBuffer as
// binary), and Go writes what notepack.io would encode for JSON.parse's
// reading of a JSON client's text (binary as bin).
//
// The decoder applies socket.io-msgpack-parser's checks (a map; type an
// integer from 0 to 4; nsp a string; data undefined or an object for
// CONNECT, undefined for DISCONNECT, an array for EVENT and ACK; id
// undefined or an integer), then the same ones as for JSON packets (event
// name, reserved names, nesting, namespace length), so that a packet is
// accepted or refused alike in both formats.

var (
	errMsgpackPacket = errors.New("invalid msgpack packet")
	errMsgpackText   = errors.New("got a text message from a msgpack client")
)

// maxMsgpackAckID bounds an acknowledgement id: JavaScript's exact
// integers.
const maxMsgpackAckID = 1<<53 - 1

// decodeMsgpackPacket decodes one packet of socket.io-msgpack-parser. Its
// attachments (the packet's binary values) alias b.
func decodeMsgpackPacket(b []byte) (*packet, error) {
	d := notepack.NewDecoder(b)
	var (
		typ           = -1.0
		typeOK, nspOK bool
		idOK          = true
		nsp           string
		id            = int64(-1)
		data          []byte
		bins          [][]byte
		hasData       bool
	)
	err := d.Fields(func(key []byte) error {
		switch string(key) {
		case "type":
			f, ok, err := d.OptNumber()
			typ, typeOK = f, ok
			return err
		case "nsp":
			if !d.IsStr() {
				nspOK = false
				_, err := d.Skip()
				return err
			}
			s, err := d.Str()
			nsp, nspOK = jsontext.JSString(s), true
			return err
		case "id":
			mark := d.Pos()
			if undef, err := d.Skip(); err != nil || undef {
				id, idOK = -1, true
				return err
			}
			d.Seek(mark)
			f, ok, err := d.OptNumber()
			id, idOK = -1, ok && f >= 0 && f <= maxMsgpackAckID && f == math.Trunc(f)
			if idOK {
				id = int64(f)
			}
			return err
		case "data":
			mark := d.Pos()
			undef, err := d.Skip()
			if err != nil {
				return err
			}
			hasData, data, bins = false, nil, nil
			if undef {
				return nil
			}
			d.Seek(mark)
			js, bs, err := d.Arg()
			if err != nil {
				return err
			}
			hasData, data, bins = true, js, bs
			return nil
		}
		_, err := d.Skip()
		return err
	})
	if err == nil {
		err = d.End()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMsgpackPacket, err)
	}
	switch {
	case !typeOK || typ != math.Trunc(typ) || typ < typeConnect || typ > typeConnectError:
		return nil, errUnknownType
	case !nspOK:
		return nil, errNamespace
	case len(nsp) > maxNamespaceLength:
		return nil, errNamespace
	case !idOK:
		return nil, errID
	}
	p := &packet{typ: int(typ), nsp: nsp, id: id}
	if hasData {
		p.data = data
		p.bins = bins
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// encodeMsgpackPacket writes a packet as socket.io-msgpack-parser does,
// with the keys in the order of Node's packet objects: {type, data, id,
// nsp} for an EVENT, {id, type, data, nsp} for an ACK, {type, data, nsp}
// for the others. With withName the data is the event name followed by
// args; otherwise args, or the JSON payload (nil: no data).
func encodeMsgpackPacket(typ int, nsp string, id int64, name string, withName bool, args []Arg, payload []byte) engineio.Message {
	var e notepack.Encoder
	n := 2 // type, nsp
	hasData := withName || typ == typeAck || payload != nil
	if hasData {
		n++
	}
	if id >= 0 {
		n++
	}
	e.MapHeader(n)
	if typ == typeAck && id >= 0 {
		e.String("id")
		e.Number(float64(id))
	}
	e.String("type")
	e.Number(float64(typ))
	if hasData {
		e.String("data")
		if payload != nil {
			if e.JSON(payload, nil) != nil {
				e.Nil()
			}
		} else {
			k := len(args)
			if withName {
				k++
			}
			e.ArrayHeader(k)
			if withName {
				e.String(name)
			}
			for _, a := range args {
				if len(a.JSON) == 0 || e.JSON(a.JSON, a.Attachments) != nil {
					// Only an Arg built by hand can be invalid JSON;
					// JSON clients would get it as is, msgpack ones null.
					e.Nil()
				}
			}
		}
	}
	if typ != typeAck && id >= 0 {
		e.String("id")
		e.Number(float64(id))
	}
	e.String("nsp")
	e.String(nsp)
	return engineio.BinaryMessage(e.Buf)
}
