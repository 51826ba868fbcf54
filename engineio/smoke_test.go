package engineio

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

type echo struct{ s *Session }

func (e *echo) OnMessage(data []byte, binary bool) {
	if binary {
		_ = e.s.Send(BinaryMessage(data))
		return
	}
	_ = e.s.Send(TextMessage(append([]byte{'4'}, data...)))
}
func (e *echo) OnQueueOverflow()      { e.s.Close("overflow") }
func (e *echo) OnClose(string, error) {}

func TestSmoke(t *testing.T) {
	srv := NewServer(Options{PingInterval: 300 * time.Millisecond, PingTimeout: 200 * time.Millisecond}, func(s *Session) SessionHandler { return &echo{s} })
	ts := httptest.NewServer(srv)
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	t.Logf("handshake %d %s", resp.StatusCode, b)
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/?EIO=4&transport=websocket"
	c, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, m, err := c.ReadMessage()
	t.Logf("open %s %v", m, err)
	c.WriteMessage(websocket.TextMessage, []byte("4hello"))
	_, m, err = c.ReadMessage()
	t.Logf("echo %s %v", m, err)
	start := time.Now()
	_, m, err = c.ReadMessage()
	t.Logf("ping %s %v after %v", m, err, time.Since(start))
	c.WriteMessage(websocket.TextMessage, []byte("3"))
	start = time.Now()
	_, m, err = c.ReadMessage()
	t.Logf("ping %s %v after %v", m, err, time.Since(start))
	time.Sleep(700 * time.Millisecond)
	_, m, err = c.ReadMessage()
	t.Logf("after timeout %q %v", m, err)
}
