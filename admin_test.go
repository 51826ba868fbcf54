package main

// The Socket.IO Admin UI's server side (-admin-ui), at the protocol level:
// what @socket.io/admin-ui 0.5.1's UI sends and expects (its browser side
// is test/browser/admin.test.mjs), on one node and across two nodes.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/chat"
	"github.com/chatio/socketio-chat/internal/testlog"
	"golang.org/x/crypto/bcrypt"
)

const adminPassword = "changeit"

// adminHash is a bcrypt hash of adminPassword, at the cheapest cost.
func adminHash(tb testing.TB) string {
	tb.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	return string(h)
}

// needAdminUI skips (or fails, under CI=true) without the UI's files.
func needAdminUI(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(chat.DefaultConfig().AdminUIDir + "/index.html"); err != nil {
		needs(tb, "the Admin UI's files (npm ci): %v", err)
	}
}

func adminServer(tb testing.TB, mutate func(*chat.Config)) *testServer {
	tb.Helper()
	needAdminUI(tb)
	hash := adminHash(tb)
	return startTestServer(tb, func(c *chat.Config) {
		c.AdminUI, c.AdminUser, c.AdminPasswordHash = true, "admin", hash
		if mutate != nil {
			mutate(c)
		}
	})
}

func creds(user, password string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": password})
	return string(b)
}

// serialized is a socket as the UI reads it.
type serialized struct {
	ID        string          `json:"id"`
	ClientID  string          `json:"clientId"`
	Transport string          `json:"transport"`
	Nsp       string          `json:"nsp"`
	Data      json.RawMessage `json:"data"`
	Rooms     []string        `json:"rooms"`
	Handshake struct {
		Address string            `json:"address"`
		Headers map[string]any    `json:"headers"`
		Query   map[string]string `json:"query"`
		Issued  int64             `json:"issued"`
		URL     string            `json:"url"`
	} `json:"handshake"`
}

// socketID is the id of a client's socket on "/", from its CONNECT answer.
func socketID(tb testing.TB, answer string) string {
	tb.Helper()
	var v struct{ SID string }
	_, payload, _ := strings.Cut(answer, "{")
	if json.Unmarshal([]byte("{"+payload), &v) != nil || v.SID == "" {
		tb.Fatalf("CONNECT answer %q", answer)
	}
	return v.SID
}

// allSockets waits for all_sockets and returns the sockets with want's
// ids, failing unless all are there.
func allSockets(tb testing.TB, admin *opClient, want ...string) map[string]serialized {
	tb.Helper()
	args := admin.expectEvent("/admin", "all_sockets", nil)
	var list []serialized
	if err := json.Unmarshal(args[0], &list); err != nil {
		tb.Fatalf("all_sockets: %v: %s", err, args[0])
	}
	byID := map[string]serialized{}
	for _, s := range list {
		byID[s.ID] = s
	}
	for _, id := range want {
		if _, ok := byID[id]; !ok {
			tb.Fatalf("all_sockets lacks %s: %s", id, args[0])
		}
	}
	return byID
}

var isoMillis = regexp.MustCompile(`^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$`)

func TestAdminUIProtocol(t *testing.T) {
	ts := adminServer(t, nil)
	chatter := opDial(t, ts.URL, false)
	cid := socketID(t, chatter.connect("/", ""))

	// Refused: wrong password, wrong user, no password, unknown session.
	for _, auth := range []string{creds("admin", "nope"), creds("root", adminPassword), `{"username":"admin"}`,
		`{"sessionId":"0123456789abcdef"}`, ""} {
		c := opDial(t, ts.URL, false)
		if got, want := c.connect("/admin", auth), `4/admin,{"message":"invalid credentials"}`; got != want {
			t.Errorf("auth %s: %q, want %q", auth, got, want)
		}
	}

	admin := opDial(t, ts.URL, false)
	if got := admin.connect("/admin", creds("admin", adminPassword)); !strings.HasPrefix(got, `0/admin,{"sid":`) {
		t.Fatalf("admin CONNECT: %q", got)
	}
	var session string
	if err := json.Unmarshal(admin.expectEvent("/admin", "session", nil)[0], &session); err != nil ||
		!regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(session) {
		t.Errorf("session id %q, %v", session, err)
	}
	cfg := admin.expectEvent("/admin", "config", nil)
	if got, want := string(cfg[0]), `{"supportedFeatures":["EMIT","JOIN","LEAVE","DISCONNECT","MJOIN","MLEAVE","MDISCONNECT","AGGREGATED_EVENTS","ALL_EVENTS"]}`; got != want {
		t.Errorf("config %s, want %s", got, want)
	}
	all := allSockets(t, admin, cid)
	if s := all[cid]; s.Nsp != "/" || s.Transport != "websocket" || s.ClientID != chatter.sid[:12] ||
		s.Handshake.Address != "127.0.0.1" || !slices.Contains(s.Rooms, cid) || string(s.Data) != "{}" {
		t.Errorf("the chat socket in all_sockets: %+v", s)
	}
	if !slices.ContainsFunc(slices.Collect(mapValues(all)), func(s serialized) bool { return s.Nsp == "/admin" }) {
		t.Error("all_sockets lacks the admin's own socket")
	}

	// A session id lets the UI back in without the password.
	again := opDial(t, ts.URL, false)
	if got := again.connect("/admin", fmt.Sprintf(`{"sessionId":%q}`, session)); !strings.HasPrefix(got, "0/admin,") {
		t.Errorf("login with the session id: %q", got)
	}

	// A client that connects over polling, then upgrades.
	late := opDialUpgrade(t, ts.URL, true)
	args := admin.expectEvent("/admin", "socket_connected", func(a []json.RawMessage) bool {
		var s serialized
		return json.Unmarshal(a[0], &s) == nil && s.Nsp == "/" && s.ClientID == late.sid[:12]
	})
	var lateSock serialized
	_ = json.Unmarshal(args[0], &lateSock)
	if lateSock.Transport != "polling" || len(args) != 2 || !isoMillis.Match(args[1]) {
		t.Errorf("socket_connected %s", bytes.Join(toBytes(args), []byte(" ")))
	}
	admin.expectEvent("/admin", "socket_updated", func(a []json.RawMessage) bool {
		return string(a[0]) == fmt.Sprintf(`{"id":%q,"nsp":"/","transport":"websocket"}`, lateSock.ID)
	})

	// server_stats, every 2 s.
	stats := admin.expectEvent("/admin", "server_stats", nil)
	var st struct {
		ServerID            string  `json:"serverId"`
		Hostname            string  `json:"hostname"`
		PID                 int     `json:"pid"`
		Uptime              float64 `json:"uptime"`
		ClientsCount        int     `json:"clientsCount"`
		PollingClientsCount *int    `json:"pollingClientsCount"`
		AggregatedEvents    []struct {
			Timestamp int64  `json:"timestamp"`
			Type      string `json:"type"`
			Count     int    `json:"count"`
		} `json:"aggregatedEvents"`
		Namespaces []struct {
			Name         string `json:"name"`
			SocketsCount int    `json:"socketsCount"`
		} `json:"namespaces"`
	}
	if err := json.Unmarshal(stats[0], &st); err != nil {
		t.Fatal(err)
	}
	if st.ServerID == "" || st.PID != os.Getpid() || st.ClientsCount < 3 || st.PollingClientsCount == nil ||
		len(st.Namespaces) != 2 || st.Namespaces[0].Name != "/" || st.Namespaces[0].SocketsCount != 2 {
		t.Errorf("server_stats %s", stats[0])
	}
	for _, e := range st.AggregatedEvents {
		if e.Timestamp%1000 != 0 || e.Count <= 0 {
			t.Errorf("aggregated event %+v", e)
		}
	}

	// Operations, as the UI sends them.
	admin.emit("/admin", "join", fmt.Sprintf(`"/","room1",%q`, cid))
	admin.expectEvent("/admin", "room_joined", func(a []json.RawMessage) bool {
		return string(a[0]) == `"/"` && string(a[1]) == `"room1"` && string(a[2]) == `"`+cid+`"` && isoMillis.Match(a[3])
	})
	admin.emit("/admin", "leave", `"/","room1"`)
	admin.expectEvent("/admin", "room_left", func(a []json.RawMessage) bool {
		return string(a[1]) == `"room1"` && string(a[2]) == `"`+cid+`"`
	})
	admin.emit("/admin", "emit", fmt.Sprintf(`"/",%q,"hello","from admin"`, cid))
	if got := chatter.expect("the admin's emit", func(p string) bool { return strings.HasPrefix(p, `2["hello"`) }); got != `2["hello","from admin"]` {
		t.Errorf("emit from the admin: %q", got)
	}
	admin.emit("/admin", "_disconnect", fmt.Sprintf(`"/",false,%q`, cid))
	chatter.expect("DISCONNECT", func(p string) bool { return p == "1" })
	admin.expectEvent("/admin", "socket_disconnected", func(a []json.RawMessage) bool {
		return string(a[0]) == `"/"` && string(a[1]) == `"`+cid+`"` && string(a[2]) == `"server namespace disconnect"`
	})
	// Malformed operations are ignored.
	admin.emit("/admin", "_disconnect", `{"x":1}`)
	admin.emit("/admin", "join", `"/nowhere","r"`)
	admin.emit("/admin", "emit", `"/"`)
	late.emit("/", "user-message", `"still here"`)
	late.expectEvent("/", "message", nil)

	// The UI's files.
	resp, err := http.Get(ts.URL + "/admin/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<title>Socket.IO Admin UI</title>") ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /admin/: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	script := regexp.MustCompile(`src="?(js/app\.[0-9a-f]+\.js)`).FindSubmatch(body)
	if script == nil {
		t.Fatalf("no app script in /admin/: %s", body)
	}
	if body, err := httpGet(ts.URL + "/admin/" + string(script[1])); err != nil || len(body) < 10_000 {
		t.Errorf("GET /admin/%s: %d bytes, %v", script[1], len(body), err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Get(ts.URL + "/admin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/admin/" {
		t.Errorf("GET /admin: %s to %q, want a redirect to /admin/", resp.Status, resp.Header.Get("Location"))
	}
}

func mapValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func toBytes(args []json.RawMessage) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = a
	}
	return out
}

func TestAdminUIReadOnly(t *testing.T) {
	ts := adminServer(t, func(c *chat.Config) { c.AdminReadOnly = true })
	chatter := opDial(t, ts.URL, false)
	cid := socketID(t, chatter.connect("/", ""))
	admin := opDial(t, ts.URL, false)
	admin.connect("/admin", creds("admin", adminPassword))
	if got := string(admin.expectEvent("/admin", "config", nil)[0]); got != `{"supportedFeatures":["AGGREGATED_EVENTS","ALL_EVENTS"]}` {
		t.Errorf("read-only config %s", got)
	}
	allSockets(t, admin, cid)
	admin.emit("/admin", "_disconnect", fmt.Sprintf(`"/",true,%q`, cid))
	admin.emit("/admin", "join", fmt.Sprintf(`"/","room1",%q`, cid))
	// Still connected, in no new room: its next message makes the round trip.
	chatter.emit("/", "user-message", `"still here"`)
	chatter.expectEvent("/", "message", nil)
	admin.expectEvent("/admin", "server_stats", nil) // a full round of stats: nothing happened meanwhile
	if s := ts.Log.String(); strings.Contains(s, "admin UI operation") {
		t.Error("a read-only admin operated")
	}
}

// TestAdminUIFromAnotherOrigin: the hosted UI (https://admin.socket.io)
// connects with credentials from its own origin, which -cors-origin allows.
func TestAdminUIFromAnotherOrigin(t *testing.T) {
	const origin = "https://admin.socket.io"
	ts := adminServer(t, func(c *chat.Config) { c.CORSOrigins = []string{origin} })
	req, _ := http.NewRequest("GET", ts.URL+"/socket.io/?EIO=4&transport=polling", nil)
	req.Header.Set("Origin", origin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != origin ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("handshake from %s: %s, ACAO %q, ACAC %q", origin, resp.Status,
			resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Access-Control-Allow-Credentials"))
	}
}

// TestAdminUILoginLimited: failed logins from one address are limited (5,
// then one per 10 s); past the limit even the right password is refused at
// once, with a message that says why; a session id from an earlier login
// still gets in.
func TestAdminUILoginLimited(t *testing.T) {
	ts := adminServer(t, nil)
	admin := opDial(t, ts.URL, false)
	if got := admin.connect("/admin", creds("admin", adminPassword)); !strings.HasPrefix(got, "0/admin,") {
		t.Fatalf("admin CONNECT: %q", got)
	}
	session := string(admin.expectEvent("/admin", "session", nil)[0])
	for i := range 5 {
		c := opDial(t, ts.URL, false)
		if got, want := c.connect("/admin", creds("admin", fmt.Sprint("guess", i))), `4/admin,{"message":"invalid credentials"}`; got != want {
			t.Fatalf("guess %d: %q, want %q", i, got, want)
		}
	}
	for _, auth := range []string{creds("admin", "guess"), creds("admin", adminPassword), `{"sessionId":"0123456789abcdef"}`} {
		c := opDial(t, ts.URL, false)
		if got, want := c.connect("/admin", auth), `4/admin,{"message":"too many failed logins from this address: retry later"}`; got != want {
			t.Errorf("auth %s past the limit: %q, want %q", auth, got, want)
		}
	}
	// A session id handed out at a login still gets in (behind a proxy,
	// every client has the proxy's address).
	if got := opDial(t, ts.URL, false).connect("/admin", `{"sessionId":`+session+`}`); !strings.HasPrefix(got, "0/admin,") {
		t.Errorf("login with a session id from the limited address: %q", got)
	}
	// The chat is not affected.
	c := opDial(t, ts.URL, false)
	if got := c.connect("/", ""); !strings.HasPrefix(got, "0{") {
		t.Errorf("chat CONNECT from the limited address: %q", got)
	}
}

// TestAdminUIRefusesToStartWithoutCredentials: -admin-ui needs a user and
// a bcrypt hash, or -admin-no-auth, as Node's instrument() needs auth.
func TestAdminUIRefusesToStartWithoutCredentials(t *testing.T) {
	env := confEnv(map[string]string{"ADMIN_UI_DIR": "node_modules/@socket.io/admin-ui/ui/dist"})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-admin-ui"}, "-admin-no-auth"},
		{[]string{"-admin-ui", "-admin-user", "admin"}, "-admin-password-hash"},
		{[]string{"-admin-ui", "-admin-user", "admin", "-admin-password-hash", "changeit"}, "bcrypt"},
		{[]string{"-admin-ui", "-admin-no-auth", "-admin-user", "admin"}, "choose one"},
		{[]string{"-pprof"}, "-metrics-addr"},
		{[]string{"-metrics-addr", "nope"}, "-metrics-addr"},
	} {
		var stderr bytes.Buffer
		code := run(context.Background(), tc.args, env, io.Discard, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, %q; want %d mentioning %q", tc.args, code, stderr.String(), exitUsage, tc.want)
		}
	}
	// The environment works as the flags do.
	_, err := chat.ParseConfig([]string{"-admin-ui"}, confEnv(map[string]string{
		"ADMIN_USER": "admin", "ADMIN_PASSWORD_HASH": adminHash(t), "ADMIN_READONLY": "true",
	}), io.Discard)
	if err != nil {
		t.Errorf("-admin-ui with ADMIN_USER and ADMIN_PASSWORD_HASH: %v", err)
	}
}

// TestAdminUICluster: two nodes on one Redis; a UI connected to one sees
// both nodes' sockets and statistics, and acts on the other node's sockets.
func TestAdminUICluster(t *testing.T) {
	needRedis(t)
	needAdminUI(t)
	prefix := fmt.Sprintf("admin-test-%d", time.Now().UnixNano())
	node := func() *testServer {
		return startTestServer(t, func(c *chat.Config) {
			c.Redis, c.RedisPrefix = "redis://127.0.0.1:6379/0", prefix
			c.AdminUI, c.AdminNoAuth = true, true
		})
	}
	a, b := node(), node()
	onA := opDial(t, a.URL, false)
	aid := socketID(t, onA.connect("/", ""))
	onB := opDial(t, b.URL, false)
	bid := socketID(t, onB.connect("/", ""))

	admin := opDial(t, a.URL, false)
	admin.connect("/admin", "")
	all := allSockets(t, admin, aid, bid)
	if s := all[bid]; s.Transport != "websocket" || s.ClientID != onB.sid[:12] || string(s.Data) != "{}" || s.Nsp != "/" {
		t.Errorf("node B's socket, seen from node A: %+v", s)
	}

	// server_stats from both nodes.
	servers := map[string]bool{}
	for deadline := time.Now().Add(opWait); len(servers) < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("server_stats from %v only", servers)
		}
		var st struct {
			ServerID string `json:"serverId"`
		}
		_ = json.Unmarshal(admin.expectEvent("/admin", "server_stats", nil)[0], &st)
		servers[st.ServerID] = true
	}

	// Node B's events reach the UI on node A; the UI acts on B's sockets.
	onB2 := opDial(t, b.URL, false)
	b2 := socketID(t, onB2.connect("/", ""))
	admin.expectEvent("/admin", "socket_connected", func(a []json.RawMessage) bool {
		var s serialized
		return json.Unmarshal(a[0], &s) == nil && s.ID == b2 && s.Transport == "websocket"
	})
	admin.emit("/admin", "join", fmt.Sprintf(`"/","room1",%q`, b2))
	admin.expectEvent("/admin", "room_joined", func(a []json.RawMessage) bool {
		return string(a[1]) == `"room1"` && string(a[2]) == `"`+b2+`"`
	})
	admin.emit("/admin", "_disconnect", fmt.Sprintf(`"/",false,%q`, bid))
	onB.expect("DISCONNECT", func(p string) bool { return p == "1" })
	admin.expectEvent("/admin", "socket_disconnected", func(a []json.RawMessage) bool {
		return string(a[1]) == `"`+bid+`"` && string(a[2]) == `"server namespace disconnect"`
	})
	// Each operation is applied once: the other clients are still there.
	for _, c := range []*opClient{onA, onB2} {
		c.emit("/", "user-message", `"still here"`)
		c.expectEvent("/", "message", func(a []json.RawMessage) bool { return string(a[0]) == `"still here"` })
	}
}

// startNodeAdmin starts test/cluster/node-admin-server.mjs on the shared
// Redis with prefix, and returns its URL.
func startNodeAdmin(t *testing.T, prefix, serverID string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		needs(t, "node is not installed (Node >= 20)")
	}
	if _, err := os.Stat("node_modules/@socket.io/admin-ui/package.json"); err != nil {
		needs(t, "npm packages missing: run npm ci")
	}
	cmd := exec.Command(node, "test/cluster/node-admin-server.mjs")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "PORT=0",
		"REDIS_URL=redis://127.0.0.1:6379", "REDIS_PREFIX=" + prefix, "SERVER_ID=" + serverID}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testlog.Writer(t)
	stdin, err := cmd.StdinPipe() // closed at the end: the node exits
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				listening <- url
			}
		}
	}()
	select {
	case url := <-listening:
		return url
	case <-time.After(opWait):
		t.Fatal("the Node.js node did not start")
		return ""
	}
}

// TestAdminUIClusterWithNodeJS: a Go node and a Node.js node running
// @socket.io/admin-ui's instrument() on one Redis. Each node's UI sees the
// other node's sockets with their client id and transport (data._admin in
// the fetchSockets answers, both ways), both nodes' server_stats, the
// other node's socket events (Node's dates arrive as ISO strings), and
// acts on the other node's sockets.
func TestAdminUIClusterWithNodeJS(t *testing.T) {
	needRedis(t)
	needAdminUI(t)
	prefix := fmt.Sprintf("admin-node-test-%d", time.Now().UnixNano())
	goNode := startTestServer(t, func(c *chat.Config) {
		c.Redis, c.RedisPrefix = "redis://127.0.0.1:6379/0", prefix
		c.AdminUI, c.AdminNoAuth = true, true
	})
	nodeURL := startNodeAdmin(t, prefix, "node-js")

	onGo := opDial(t, goNode.URL, false)
	goID := socketID(t, onGo.connect("/", ""))
	onNode := opDial(t, nodeURL, false)
	nodeID := socketID(t, onNode.connect("/", ""))

	// The UI on our node sees the Node.js node's socket, and its stats.
	adminGo := opDial(t, goNode.URL, false)
	adminGo.connect("/admin", "")
	all := allSockets(t, adminGo, goID, nodeID)
	if s := all[nodeID]; s.Transport != "websocket" || s.ClientID != onNode.sid[:12] || string(s.Data) != "{}" {
		t.Errorf("the Node.js node's socket, seen from ours: %+v", s)
	}
	adminGo.expectEvent("/admin", "server_stats", func(a []json.RawMessage) bool {
		return strings.Contains(string(a[0]), `"serverId":"node-js"`)
	})

	// The UI on the Node.js node sees our socket the same way.
	adminNode := opDial(t, nodeURL, false)
	adminNode.connect("/admin", "")
	all = allSockets(t, adminNode, goID, nodeID)
	if s := all[goID]; s.Transport != "websocket" || s.ClientID != onGo.sid[:12] || string(s.Data) != "{}" {
		t.Errorf("our node's socket, seen from the Node.js node: %+v", s)
	}

	// Socket events of the Node.js node reach our UI, dates as ISO strings;
	// ours reach the Node.js node's UI.
	late := opDial(t, nodeURL, false)
	lateID := socketID(t, late.connect("/", ""))
	adminGo.expectEvent("/admin", "socket_connected", func(a []json.RawMessage) bool {
		var s serialized
		return json.Unmarshal(a[0], &s) == nil && s.ID == lateID && len(a) == 2 && isoMillis.Match(a[1])
	})
	late2 := opDial(t, goNode.URL, false)
	late2ID := socketID(t, late2.connect("/", ""))
	adminNode.expectEvent("/admin", "socket_connected", func(a []json.RawMessage) bool {
		var s serialized
		return json.Unmarshal(a[0], &s) == nil && s.ID == late2ID && s.Transport == "websocket"
	})

	// Our UI disconnects a socket of the Node.js node, and the reverse.
	adminGo.emit("/admin", "_disconnect", fmt.Sprintf(`"/",false,%q`, nodeID))
	onNode.expect("DISCONNECT", func(p string) bool { return p == "1" })
	adminNode.emit("/admin", "_disconnect", fmt.Sprintf(`"/",false,%q`, goID))
	onGo.expect("DISCONNECT", func(p string) bool { return p == "1" })
	adminGo.expectEvent("/admin", "socket_disconnected", func(a []json.RawMessage) bool {
		return string(a[1]) == `"`+nodeID+`"` && string(a[2]) == `"server namespace disconnect"`
	})
}
