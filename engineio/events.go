package engineio

import (
	"net/http"
	"slices"
	"strings"
)

// Engine.IO error codes, as Node's engine.io numbers them (Server.errors),
// given to Options.OnConnectionError and in the body of a refused request.
const (
	CodeUnknownTransport    = codeUnknownTransport    // "Transport unknown"
	CodeUnknownSID          = codeUnknownSID          // "Session ID unknown"
	CodeBadHandshakeMethod  = codeBadHandshakeMethod  // "Bad handshake method"
	CodeBadRequest          = codeBadRequest          // "Bad request"
	CodeForbidden           = codeForbidden           // "Forbidden"
	CodeUnsupportedProtocol = codeUnsupportedProtocol // "Unsupported protocol version"
)

// ConnectionError describes a refused request, as Node's engine.io
// "connection_error" event does: Code and Message are Node's (see the Code
// constants; Message is always Node's message for Code, as in Node, while
// the answer's body may say more, such as AllowRequest's error), Reason
// says in words why, and Status is the HTTP status of the answer.
type ConnectionError struct {
	Request *http.Request // the refused request
	Code    int           // Node's code, one of the Code constants
	Message string        // Node's message for Code ("Forbidden", …)
	Reason  string        // why, in words, as the server's log says it
	Status  int           // the HTTP status of the answer
}

// Error is the message and the reason.
func (e *ConnectionError) Error() string { return e.Message + ": " + e.Reason }

// connectionError tells Options.OnConnectionError about a refusal.
func (s *Server) connectionError(r *http.Request, status, code int, message, reason string) {
	if fn := s.opts.OnConnectionError; fn != nil {
		if code >= 0 && code < len(errorMessages) {
			message = errorMessages[code]
		}
		fn(&ConnectionError{Request: r, Code: code, Message: message, Reason: reason, Status: status})
	}
}

// setHeaders adds the headers of the server's options to a response that
// serves the request r: the cookie and InitialHeaders on a handshake's
// (sid is the new session's), then Headers on every one.
func (s *Server) setHeaders(h http.Header, r *http.Request, sid string) {
	if sid != "" {
		if c := s.opts.Cookie; c != nil {
			ck := *c
			if ck.Name == "" {
				ck.Name = "io"
			}
			ck.Value = sid
			if v := ck.String(); v != "" {
				h.Add("Set-Cookie", v)
			}
		}
		if fn := s.opts.InitialHeaders; fn != nil {
			fn(h, r)
		}
	}
	if fn := s.opts.Headers; fn != nil {
		fn(h, r)
	}
}

// allowsTransport reports whether Options.Transports lets clients use t.
func (s *Server) allowsTransport(t string) bool {
	return len(s.opts.Transports) == 0 || slices.Contains(s.opts.Transports, t)
}

// appendHeaders writes h as header lines of a raw HTTP response (the
// WebSocket 101), leaving out those the handshake writes itself and those
// a raw response cannot carry safely.
func appendHeaders(dst []byte, h http.Header) []byte {
	for name, values := range h {
		switch http.CanonicalHeaderKey(name) {
		case "Upgrade", "Connection", "Sec-Websocket-Accept", "Content-Length", "Transfer-Encoding":
			continue
		}
		if name == "" || strings.ContainsAny(name, " \t\r\n:") || !validHeaderValue(name) {
			continue
		}
		for _, v := range values {
			if !validHeaderValue(v) {
				continue
			}
			dst = append(dst, name...)
			dst = append(dst, ": "...)
			dst = append(dst, v...)
			dst = append(dst, "\r\n"...)
		}
	}
	return dst
}
