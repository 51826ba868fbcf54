package socketio

import (
	"encoding/json"
	"fmt"
)

// DecodeData decodes the socket's data (Node's socket.data) into v with
// encoding/json, the same way wherever the socket is. RemoteSocket.Data
// holds what the socket's node has: the Go value given to SetData for a
// socket of this node, the JSON text (a json.RawMessage) another node sent
// through the cluster adapter. Code that must work on every node of a
// cluster reads the data with DecodeData rather than by type assertion on
// Data: a value of this node goes through json.Marshal first, so both see
// the JSON the other nodes see (and a value JSON cannot carry fails here,
// not only on the other nodes). No data decodes as JSON null (v is left as
// it is, as encoding/json does).
func (r *RemoteSocket) DecodeData(v any) error {
	var raw []byte
	switch d := r.Data.(type) {
	case nil:
		return nil
	case json.RawMessage:
		raw = d
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("socketio: the data of socket %s: %w", r.ID, err)
		}
		raw = b
	}
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, v)
}
