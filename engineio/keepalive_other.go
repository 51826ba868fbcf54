//go:build !linux

package engineio

import "net/http"

// keepAlive does nothing: the keep-alive fast path needs the epoll engine.
func (s *Session) keepAlive(w http.ResponseWriter, r *http.Request, poll bool) {}

type pollConns struct{}

func (srv *Server) closePollConns() {}

// PollConns is the number of keep-alive connections the server serves
// itself (Options.KeepAlive): none, but on Linux.
func (srv *Server) PollConns() int { return 0 }
