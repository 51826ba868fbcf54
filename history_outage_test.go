package main

// No silent loss while the history store is down: a PostgreSQL outage
// (every connection to it cut by a proxy, new ones refused) delays the
// messages sent meanwhile, by the unmodified page (no ack) and by the
// tutorial's final page (ack, client offset), and stores and broadcasts
// them, in order, once it is back; a message past the bounds is refused
// to its sender, in the ack or in a user-message-error event.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/chat"
)

// histPGViaProxy is a PostgreSQL history of the test's own reached through
// a proxy that the test can cut.
func histPGViaProxy(t *testing.T) (dsn string, p *histProxy) {
	t.Helper()
	direct := historyPostgresDSN(t)
	u, _ := url.Parse(direct)
	p = startHistProxy(t, u.Host)
	u.Host = p.addr()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	return u.String(), p
}

// histRefusals returns the user-message-error events a raw client
// received: their first argument (the refusal) and second (the message).
func histRefusals(t *testing.T, c *rawChat) (refusals []map[string]string, messages []string) {
	t.Helper()
	for _, p := range c.received() {
		if !strings.HasPrefix(p, `42["user-message-error",`) {
			continue
		}
		var args []json.RawMessage
		if err := json.Unmarshal([]byte(p[2:]), &args); err != nil || len(args) != 3 {
			t.Fatalf("%s: user-message-error packet %q: want [name, refusal, message]", c.name, p)
		}
		var r map[string]string
		if err := json.Unmarshal(args[1], &r); err != nil || r["error"] == "" || r["reason"] == "" {
			t.Fatalf("%s: refusal %s: want {error, reason}", c.name, args[1])
		}
		refusals, messages = append(refusals, r), append(messages, string(args[2]))
	}
	return refusals, messages
}

// histAckArgs returns the arguments of the acknowledgements a raw client
// received, by ack id.
func histAckArgs(t *testing.T, c *rawChat) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	for _, p := range c.received() {
		rest, ok := strings.CutPrefix(p, "43")
		if !ok {
			continue
		}
		i := strings.IndexByte(rest, '[')
		id, err := strconv.ParseInt(rest[:max(i, 0)], 10, 64)
		if err != nil {
			t.Fatalf("%s: ack %q", c.name, p)
		}
		out[id] = rest[i:]
	}
	return out
}

// A 5 s PostgreSQL outage loses nothing: 15 messages from a sender that
// asks for no ack (the unmodified page) and 15 from one that asks for acks
// with client offsets (the tutorial's final page), interleaved, all sent
// while the store is unreachable, are broadcast and stored once it is back,
// each once, in each sender's order, and every ack arrives. Before, the
// messages without ack were neither stored nor broadcast and nobody was
// told (17 of 31 vanished in the 10 s stop).
func TestHistoryOutageNoSilentLoss(t *testing.T) {
	dsn, proxy := histPGViaProxy(t)
	ts := historyStart(t, dsn)
	page := rawChatDial(t, ts, rawChatWS, "page", rawChatOptions{})
	tutorial := rawChatDial(t, ts, rawChatWS, "tutorial", rawChatOptions{})
	observer := rawChatDial(t, ts, rawChatWS, "observer", rawChatOptions{})
	histSend(t, page, -1, `"before"`, "")
	histWait(t, observer, 1, 10*time.Second)

	proxy.cut()
	outage := time.Now()
	const each = 15
	var want []string
	for i := range each {
		p, q := fmt.Sprintf(`"page %d"`, i), fmt.Sprintf(`"tutorial %d"`, i)
		histSend(t, page, -1, p, "")
		histSend(t, tutorial, int64(i), q, fmt.Sprintf("co-%d", i))
		want = append(want, p, q)
		if i == 0 {
			sioEventually(t, 20*time.Second, "the store's failure to be logged", func() bool {
				return strings.Contains(ts.Log.String(), "history: storing a chat message failed")
			})
		}
	}
	for time.Since(outage) < 5*time.Second {
		time.Sleep(100 * time.Millisecond) // the scenario: an outage of 5 s in all
	}
	proxy.restore()

	msgs := histWait(t, observer, int64(1+2*each), 30*time.Second)
	histCheckRun(t, "observer", msgs, 1, 1+2*each)
	var got []string
	for _, m := range msgs[1:] {
		got = append(got, m.text)
	}
	// Each sender's messages in its order (the two senders' are
	// interleaved as the server received them).
	for _, who := range []string{"page", "tutorial"} {
		var g, w []string
		for _, s := range got {
			if strings.HasPrefix(s, `"`+who) {
				g = append(g, s)
			}
		}
		for _, s := range want {
			if strings.HasPrefix(s, `"`+who) {
				w = append(w, s)
			}
		}
		if !slices.Equal(g, w) {
			t.Fatalf("%s's messages broadcast as %v, want %v", who, g, w)
		}
	}
	sioEventually(t, 10*time.Second, "every ack", func() bool { return len(histAckArgs(t, tutorial)) == each })
	for id, args := range histAckArgs(t, tutorial) {
		if args != "[]" {
			t.Errorf("ack %d carries %s, want none (stored)", id, args)
		}
	}
	for _, c := range []*rawChat{page, tutorial} {
		if r, _ := histRefusals(t, c); len(r) != 0 {
			t.Errorf("%s was refused %v during a 5 s outage", c.name, r)
		}
	}
	if got := len(histStored(t, dsn)); got != 1+2*each {
		t.Fatalf("stored %d messages, want %d", got, 1+2*each)
	}
	sioEventually(t, 5*time.Second, "the recovery line", func() bool {
		return strings.Contains(ts.Log.String(), "history: storing a chat message works again")
	})
	if n := strings.Count(ts.Log.String(), "history: storing a chat message failed"); n != 1 {
		t.Errorf("the outage was logged %d times, want once", n)
	}
}

// Past its bounds a message is refused to its sender, never dropped
// silently: with the store down, the messages beyond the 16 MiB that may
// wait are refused at once, with the reason, in the ack of a sender that
// asked for one and in a user-message-error event (with the message) to
// one that did not; the ones that waited are stored once the store is back.
// A message whose data the store refuses (a client offset with a NUL
// character, which PostgreSQL cannot store as text) is refused alone, also
// while others are stored.
func TestHistoryOutageRefusals(t *testing.T) {
	dsn, proxy := histPGViaProxy(t)
	ts := historyStart(t, dsn, func(c *chat.Config) {
		c.SendQueueBytes = 64 << 20 // the refusals carry the 60 kB messages back
	})
	page := rawChatDial(t, ts, rawChatWS, "page", rawChatOptions{})
	tutorial := rawChatDial(t, ts, rawChatWS, "tutorial", rawChatOptions{})
	observer := rawChatDial(t, ts, rawChatWS, "observer", rawChatOptions{})

	// The store refuses the data: the ack says so, the other message of
	// the same moment is stored.
	histSend(t, tutorial, 1, `"nul"`, "co-\x00")
	histSend(t, page, -1, `"fine"`, "")
	histWait(t, observer, 1, 10*time.Second)
	sioEventually(t, 10*time.Second, "the refusal in the ack", func() bool { return histAckArgs(t, tutorial)[1] != "" })
	if a := histAckArgs(t, tutorial)[1]; !strings.Contains(a, `"reason":"history_rejected"`) || !strings.Contains(a, `"error":"message not stored`) {
		t.Fatalf("ack of the refused message: %s, want {error, reason: history_rejected}", a)
	}

	proxy.cut()
	sioEventually(t, 20*time.Second, "the outage to be seen", func() bool {
		histSend(t, page, -1, `"probe"`, "")
		return strings.Contains(ts.Log.String(), "history: storing a chat message failed")
	})
	big := `"` + strings.Repeat("x", 60_000) + `"`
	// 300 × 60 kB from the page: more than the 16 MiB that may wait.
	const fromPage, fromTutorial = 300, 5
	for range fromPage {
		histSend(t, page, -1, big, "")
	}
	var pageRefused, tutorialRefused int
	sioEventually(t, 30*time.Second, "the page's refusals", func() bool {
		r, _ := histRefusals(t, page)
		pageRefused = len(r)
		return pageRefused > 0
	})
	// The queue is full: the tutorial's messages are refused in their acks.
	for i := range fromTutorial {
		histSend(t, tutorial, int64(100+i), big, fmt.Sprintf("big-%d", i))
	}
	sioEventually(t, 30*time.Second, "the tutorial's refusals", func() bool {
		tutorialRefused = 0
		for _, a := range histAckArgs(t, tutorial) {
			if strings.Contains(a, `"reason":"history_full"`) {
				tutorialRefused++
			}
		}
		return tutorialRefused == fromTutorial
	})
	refusals, messages := histRefusals(t, page)
	for i, r := range refusals {
		if r["reason"] != "history_full" || messages[i] != big {
			t.Fatalf("refusal %v of %.20s…: want reason history_full and the message", r, messages[i])
		}
	}
	proxy.restore()

	// Every big message is either stored and broadcast or refused to its
	// sender: none is lost without a word.
	stored := 0
	sioEventually(t, 60*time.Second, "the waiting messages to be stored", func() bool {
		stored = 0
		for _, m := range histMessages(t, observer) {
			if m.text == big {
				stored++
			}
		}
		r, _ := histRefusals(t, page)
		full := 0
		for _, a := range histAckArgs(t, tutorial) {
			if strings.Contains(a, `"reason":"history_full"`) {
				full++
			}
		}
		pageRefused, tutorialRefused = len(r), full
		return stored+pageRefused+tutorialRefused == fromPage+fromTutorial
	})
	if stored < 250 || stored > 280 {
		t.Errorf("%d of %d stored: the bound (16 MiB) holds about 279 of them", stored, fromPage+fromTutorial)
	}
	t.Logf("%d stored, %d refused by event, %d refused by ack", stored, pageRefused, tutorialRefused)
}
