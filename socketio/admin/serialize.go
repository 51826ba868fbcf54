package admin

import (
	"encoding/json"
	"maps"
	"net"
	"strings"
	"time"

	"github.com/chatio/socketio-chat/socketio"
)

// adminKey is the key of socket.data where Node's instrument() keeps what
// the UI needs of a socket ({clientId, transport}); other nodes read it
// from fetchSockets' answers.
const adminKey = "_admin"

// clientID is the UI's id of a socket's connection: the first 12
// characters of its Engine.IO session id, as Node.
func clientID(s *socketio.Socket) string {
	id := s.Conn().ID()
	return id[:min(12, len(id))]
}

// tag puts {clientId, transport} in the socket's data under "_admin", as
// Node does, so that the nodes that fetch this socket (Node's or ours) know
// them; only in a cluster (this node reads its own sockets' directly).
// Data of another type than a map is left alone (the other nodes then show
// no transport). An application that replaces the data of a socket should
// keep the "_admin" key, as with Node.
func tag(s *socketio.Socket, transport string) {
	info := map[string]any{"clientId": clientID(s), "transport": transport}
	switch d := s.Data().(type) {
	case nil:
		s.SetData(map[string]any{adminKey: info})
	case map[string]any:
		m := maps.Clone(d)
		m[adminKey] = info
		s.SetData(m)
	}
}

// local describes a socket of this node as FetchSockets would, for
// serialize (which reads only its fields).
func local(s *socketio.Socket) *socketio.RemoteSocket {
	return &socketio.RemoteSocket{ID: s.ID(), Handshake: s.Handshake(), Rooms: s.Rooms(), Data: s.Data()}
}

// serializedSocket is a socket as the UI reads it (Node's serialize).
type serializedSocket struct {
	ID        string              `json:"id"`
	ClientID  string              `json:"clientId,omitempty"`
	Transport string              `json:"transport,omitempty"`
	Nsp       string              `json:"nsp"`
	Data      json.RawMessage     `json:"data"`
	Handshake serializedHandshake `json:"handshake"`
	Rooms     []string            `json:"rooms"`
}

type serializedHandshake struct {
	Address string            `json:"address"`
	Headers map[string]any    `json:"headers"`
	Query   map[string]string `json:"query"`
	Issued  int64             `json:"issued"`
	Secure  bool              `json:"secure"`
	Time    string            `json:"time"`
	URL     string            `json:"url"`
	XDomain bool              `json:"xdomain"`
}

// serialize describes a socket of any node for the UI. Its client id and
// transport come from its data's "_admin" (and, for a socket of this node,
// from its session), which is taken out of the data shown.
func (a *Admin) serialize(n *socketio.Namespace, rs *socketio.RemoteSocket) []byte {
	out := serializedSocket{ID: rs.ID, Nsp: n.Name(), Rooms: rs.Rooms, Data: json.RawMessage("{}")}
	if out.Rooms == nil {
		out.Rooms = []string{}
	}
	if raw, err := json.Marshal(rs.Data); err == nil && len(raw) > 0 && raw[0] == '{' {
		var fields map[string]json.RawMessage
		if json.Unmarshal(raw, &fields) == nil {
			if info, ok := fields[adminKey]; ok {
				var v struct {
					ClientID  string `json:"clientId"`
					Transport string `json:"transport"`
				}
				_ = json.Unmarshal(info, &v)
				out.ClientID, out.Transport = v.ClientID, v.Transport
				delete(fields, adminKey)
				raw, _ = json.Marshal(fields)
			}
			out.Data = raw
		}
	} else if err == nil && string(raw) != "null" {
		out.Data = raw
	}
	if s := n.Socket(rs.ID); s != nil {
		out.ClientID, out.Transport = clientID(s), s.Conn().Transport()
	}
	h := rs.Handshake
	hs := serializedHandshake{
		Headers: map[string]any{},
		Query:   map[string]string{},
		Secure:  h.Secure,
		URL:     h.URL,
		XDomain: h.XDomain,
	}
	for k, vals := range h.Headers {
		lk := strings.ToLower(k)
		if lk == "set-cookie" {
			hs.Headers[lk] = vals
		} else {
			hs.Headers[lk] = strings.Join(vals, ", ")
		}
	}
	for k, vals := range h.Query {
		if len(vals) > 0 {
			hs.Query[k] = vals[0]
		}
	}
	issued := h.Time
	if issued.IsZero() {
		issued = time.Now()
	}
	hs.Issued = issued.UnixMilli()
	hs.Time = issued.UTC().Format("Mon Jan 02 2006 15:04:05 GMT+0000 (Coordinated Universal Time)")
	// The address the UI shows, as Node picks it (headers a proxy sets
	// first); the peer's without its port.
	hs.Address = h.Headers.Get("Cf-Connecting-Ip")
	if hs.Address == "" {
		hs.Address = h.Headers.Get("X-Forwarded-For")
	}
	if hs.Address == "" {
		hs.Address = h.Address
		if host, _, err := net.SplitHostPort(h.Address); err == nil {
			hs.Address = host
		}
	}
	out.Handshake = hs
	b, _ := json.Marshal(out)
	return b
}

// timestamp is t as JavaScript's Date.prototype.toJSON writes it (what a
// Date argument becomes in Node's JSON): UTC, milliseconds, Z.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
