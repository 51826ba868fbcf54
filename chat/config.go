package chat

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chatio/socketio-chat/socketio"
	"golang.org/x/crypto/bcrypt"
)

// Config is everything the server can be told at start-up. It is filled by
// ParseConfig from flags, then environment variables, then defaults (in that
// order of precedence), and checked in one place by Validate.
type Config struct {
	// Addr is the TCP address to listen on. Defaults to ":9000"; PORT=n means ":n".
	Addr string
	// PublicDir holds index.html and the other static files. Defaults to "public".
	PublicDir string
	// ClientDir holds the official socket.io-client browser bundle
	// (node_modules/socket.io-client/dist after `npm ci`).
	ClientDir string
	// Path is where Engine.IO is mounted. Defaults to "/socket.io/", as in Node.
	Path string

	// PingInterval and PingTimeout drive the Engine.IO heartbeat (25 s and 20 s in Node).
	PingInterval time.Duration
	PingTimeout  time.Duration
	// MaxHTTPBufferSize bounds one polling body or WebSocket message, in bytes (1 MB in Node).
	MaxHTTPBufferSize int64
	// ConnectTimeout closes an Engine.IO session that joins no namespace in time (45 s in Node).
	ConnectTimeout time.Duration

	// CORSOrigins are origins allowed besides the server's own; "*" allows every origin.
	CORSOrigins []string
	// AllowedHosts are host names the server answers to besides IP
	// addresses, localhost, this machine's name and the hosts of
	// CORSOrigins: a request whose Host header is none of them is refused
	// (DNS rebinding). ".example.com" allows the domain and its
	// subdomains; "*" allows every Host. Behind a reverse proxy, list the
	// public name.
	AllowedHosts []string
	// AllowEIO3 accepts Engine.IO v3 clients (socket.io-client 2.x). Off, as in Node.
	AllowEIO3 bool
	// Recovery turns on connection state recovery with this window; 0 is off, as in Node.
	Recovery time.Duration
	// Parser is the Socket.IO packet format: "json" (socket.io-parser),
	// "msgpack" (socket.io-msgpack-parser) or "auto" (each client's own,
	// recognised from its first packet; the default, so that clients of
	// every bundle served, socket.io.msgpack.min.js included, connect: JSON
	// clients get the same bytes as with "json", at no measurable cost).
	Parser string

	// MaxConnections bounds concurrent Engine.IO sessions; new ones beyond it get 503.
	MaxConnections int
	// WebSocketIO is how idle WebSocket connections wait for data: "epoll"
	// (no goroutine per connection; Linux) or "goroutine" (one reader
	// goroutine each, the portable model, kept for comparison).
	WebSocketIO string
	// PollingKeepAlive serves the later long-polling requests of a
	// keep-alive connection on the epoll engine instead of net/http
	// (engineio.KeepAlive), with -ws-io epoll. On by default.
	PollingKeepAlive bool
	// WSFront reads new connections' first request on the epoll engine and
	// serves WebSocket handshakes without net/http (engineio.Front), with
	// -ws-io epoll; every other request goes to net/http. On by default.
	WSFront bool
	// WSCompression negotiates permessage-deflate with the WebSocket
	// clients that offer it (off by default, as in Node); messages of
	// WSCompressionThreshold bytes or more are sent compressed (0: all).
	WSCompression          bool
	WSCompressionThreshold int
	// MaxHTTPConnections bounds the TCP connections that are not (yet)
	// WebSocket sessions: HTTP requests, long polls, idle keep-alive
	// connections. Connections beyond it are closed at once.
	MaxHTTPConnections int
	// MaxPendingPerIP bounds, per client address (per /64 for IPv6), the
	// HTTP connections that do not serve a session: connections waiting
	// for or sending their request headers, idle keep-alive connections,
	// and requests other than a session's long poll or POST while they
	// run. More from that address are closed at once. 0 is no bound.
	// Behind a reverse proxy every client has the proxy's address: see
	// docs/OPERATING.md.
	MaxPendingPerIP int
	// HTTPIdleTimeout closes a keep-alive connection that sends no new
	// request for that long.
	HTTPIdleTimeout time.Duration
	// SendQueuePackets and SendQueueBytes bound one connection's outgoing queue;
	// a client that overflows it (it stopped reading) is disconnected.
	SendQueuePackets int
	SendQueueBytes   int64
	// QueueBudget bounds what the send queues of all clients hold together,
	// in bytes; past it the clients with the largest queues are
	// disconnected first, as slow consumers. Defaults to 128 MiB.
	QueueBudget int64
	// EventRate and EventBurst are the per-connection token bucket for incoming events.
	EventRate  float64
	EventBurst int
	// MaxMessageBytes bounds the encoded size of one chat message.
	MaxMessageBytes int

	// Redis is the URL of a Redis server shared by several nodes; empty means one node.
	Redis string
	// RedisPrefix is the key prefix of the Redis adapter (the same as Node's @socket.io/redis-adapter).
	RedisPrefix string
	// RedisAdapter is the cluster adapter with -redis: pubsub (Node's
	// @socket.io/redis-adapter createAdapter), sharded (its
	// createShardedAdapter, Redis 7 sharded pub/sub) or streams (Node's
	// @socket.io/redis-streams-adapter: nothing lost through outages,
	// sessions recovered on any node). See docs/CLUSTER.md.
	RedisAdapter string
	// ClusterOrder (-cluster-order, only with RedisAdapter streams) makes
	// every node deliver every broadcast, its own included, from the stream
	// in the stream's order: all clients on all nodes see one sequence.
	ClusterOrder bool

	// Namespaces are more chat rooms besides "/", as namespaces (e.g.
	// "/n0,/n1"): a user-message sent in one is broadcast to its clients
	// only, as the tutorial's io.of(name).emit. Empty (the default) is
	// the tutorial's chat, "/" only. Not with History, which stores "/"'s.
	Namespaces []string

	// History stores every chat message: the path of a SQLite file, or a
	// postgres:// URL that every node of a cluster shares. Empty (the
	// default, as the tutorial's Node server) keeps no history. See
	// docs/HISTORY.md.
	History string
	// HistoryLast is how many of the newest messages a client that sends
	// no auth.serverOffset receives when it connects. Defaults to 100.
	HistoryLast int
	// HistoryMaxCatchup bounds the catch-up of a client that sends an
	// auth.serverOffset: at most the newest HistoryMaxCatchup messages
	// after it. 0 sends them all. Defaults to 10 000.
	HistoryMaxCatchup int
	// HistoryMaxMessages and HistoryMaxAge are the retention: keep at most
	// that many messages, and none older. 0 keeps everything.
	HistoryMaxMessages int64
	HistoryMaxAge      time.Duration
	// HistoryTrimInterval is how often retention runs. Defaults to 1m.
	HistoryTrimInterval time.Duration
	// HistorySync is the SQLite durability: "full" (default: every commit
	// is fsynced, an ack survives a power loss) or "normal" (an ack
	// survives a crash of the process, not of the machine).
	HistorySync string
	// HistoryPoll is how often a node reads the history for messages it
	// was not told about (other nodes' messages on PostgreSQL, whose
	// notifications are the fast path). Defaults to 1s.
	HistoryPoll time.Duration

	// MetricsAddr is where Prometheus metrics are served (/metrics), on a
	// listener of their own so that the public port never shows them;
	// empty (the default) serves none. See docs/OPERATING.md.
	MetricsAddr string
	// Pprof also serves net/http/pprof at /debug/pprof/ on MetricsAddr.
	Pprof bool
	// AdminUI turns on the Socket.IO Admin UI: its /admin namespace, and
	// its files (AdminUIDir, node_modules/@socket.io/admin-ui/ui/dist after
	// `npm ci`) at /admin/. It needs AdminUser and AdminPasswordHash (a
	// bcrypt hash), or AdminNoAuth to let anyone in.
	AdminUI           bool
	AdminUIDir        string
	AdminUser         string
	AdminPasswordHash string
	AdminNoAuth       bool
	// AdminReadOnly offers the Admin UI no operation (disconnect, join…).
	AdminReadOnly bool
	// DrainDelay is how long, after SIGINT/SIGTERM, the server keeps
	// serving with /readyz answering 503 (so that a load balancer stops
	// sending new clients) before it stops accepting and closes sessions.
	DrainDelay time.Duration

	// Conformance starts the protocol test-suite servers instead of the chat.
	Conformance bool

	// GCPercent is the garbage collector's target (GOGC); 0 keeps the runtime's
	// own setting (100, or the GOGC environment variable).
	GCPercent int
	// MemoryLimit is a soft memory limit for the runtime (GOMEMLIMIT), in
	// bytes; 0 keeps the runtime's own setting.
	MemoryLimit int64

	// ShutdownGrace is how long a SIGINT/SIGTERM waits for clients to leave.
	ShutdownGrace time.Duration

	// LogFormat is "text" or "json"; LogLevel is debug, info, warn or error.
	LogFormat string
	LogLevel  slog.Level
}

// DefaultConfig returns the configuration of a server started with no flags
// and no environment: Node's defaults wherever Node has one.
func DefaultConfig() Config {
	return Config{
		Addr:                   ":9000",
		PublicDir:              "public",
		ClientDir:              "node_modules/socket.io-client/dist",
		Path:                   "/socket.io/",
		PingInterval:           25 * time.Second,
		PingTimeout:            20 * time.Second,
		MaxHTTPBufferSize:      1_000_000,
		ConnectTimeout:         45 * time.Second,
		MaxConnections:         100_000,
		MaxHTTPConnections:     10_000,
		MaxPendingPerIP:        512,
		WebSocketIO:            "epoll",
		PollingKeepAlive:       true,
		WSFront:                true,
		Parser:                 "auto",
		WSCompressionThreshold: 1024,
		HTTPIdleTimeout:        30 * time.Second,
		SendQueuePackets:       4096,
		SendQueueBytes:         2 << 20,
		QueueBudget:            128 << 20,
		EventRate:              50,
		EventBurst:             100,
		MaxMessageBytes:        64 << 10,
		RedisPrefix:            "socket.io",
		RedisAdapter:           "pubsub",
		HistoryLast:            100,
		HistoryMaxCatchup:      10_000,
		HistorySync:            "full",
		HistoryPoll:            time.Second,
		AdminUIDir:             "node_modules/@socket.io/admin-ui/ui/dist",
		HistoryTrimInterval:    time.Minute,
		ShutdownGrace:          10 * time.Second,
		LogFormat:              "text",
		LogLevel:               slog.LevelInfo,
	}
}

// ErrHelp is returned by parseConfig when -h was asked for; usage has been printed.
var ErrHelp = flag.ErrHelp

// ParseConfig reads flags from args (without the program name), falling back
// to getenv for each flag's environment variable, then to the defaults.
// Usage and parse errors are written to out.
func ParseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("socketio-chat", flag.ContinueOnError)
	fs.SetOutput(out)

	var (
		cors      string
		hosts     string
		logLevel  string
		envErrors []error
	)
	// env returns the environment value for a flag, used as its default.
	env := func(name string) (string, bool) {
		v := getenv(name)
		return v, v != ""
	}
	str := func(p *string, flagName, envName, usage string) {
		if v, ok := env(envName); ok {
			*p = v
		}
		fs.StringVar(p, flagName, *p, usage+" (env "+envName+")")
	}
	dur := func(p *time.Duration, flagName, envName, usage string) {
		if v, ok := env(envName); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				envErrors = append(envErrors, fmt.Errorf("%s=%q: not a duration such as 25s or 2m", envName, v))
			}
			*p = d
		}
		fs.DurationVar(p, flagName, *p, usage+" (env "+envName+")")
	}
	integer := func(p *int, flagName, envName, usage string) {
		if v, ok := env(envName); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				envErrors = append(envErrors, fmt.Errorf("%s=%q: not an integer", envName, v))
			}
			*p = n
		}
		fs.IntVar(p, flagName, *p, usage+" (env "+envName+")")
	}
	int64v := func(p *int64, flagName, envName, usage string) {
		if v, ok := env(envName); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				envErrors = append(envErrors, fmt.Errorf("%s=%q: not an integer", envName, v))
			}
			*p = n
		}
		fs.Int64Var(p, flagName, *p, usage+" (env "+envName+")")
	}
	float := func(p *float64, flagName, envName, usage string) {
		if v, ok := env(envName); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				envErrors = append(envErrors, fmt.Errorf("%s=%q: not a number", envName, v))
			}
			*p = f
		}
		fs.Float64Var(p, flagName, *p, usage+" (env "+envName+")")
	}
	list := func(p *[]string, flagName, envName, usage string) {
		splitList := func(v string) []string {
			var out []string
			for _, f := range strings.Split(v, ",") {
				if f = strings.TrimSpace(f); f != "" {
					out = append(out, f)
				}
			}
			return out
		}
		if v, ok := env(envName); ok {
			*p = splitList(v)
		}
		fs.Func(flagName, usage+" (env "+envName+")", func(v string) error {
			*p = splitList(v)
			return nil
		})
	}
	boolean := func(p *bool, flagName, envName, usage string) {
		if v, ok := env(envName); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				envErrors = append(envErrors, fmt.Errorf("%s=%q: not a boolean", envName, v))
			}
			*p = b
		}
		fs.BoolVar(p, flagName, *p, usage+" (env "+envName+")")
	}

	if port, ok := env("PORT"); ok {
		cfg.Addr = ":" + port
	}
	str(&cfg.Addr, "addr", "ADDR", "listen address; PORT=n means :n")
	str(&cfg.PublicDir, "public", "PUBLIC_DIR", "directory of static files, index.html at /")
	str(&cfg.ClientDir, "client-dir", "CLIENT_DIR", "directory of the socket.io-client browser bundle")
	str(&cfg.Path, "path", "SOCKETIO_PATH", "Socket.IO mount path")
	dur(&cfg.PingInterval, "ping-interval", "PING_INTERVAL", "Engine.IO heartbeat interval")
	dur(&cfg.PingTimeout, "ping-timeout", "PING_TIMEOUT", "Engine.IO heartbeat timeout")
	int64v(&cfg.MaxHTTPBufferSize, "max-http-buffer-size", "MAX_HTTP_BUFFER_SIZE", "largest polling body or WebSocket message, bytes")
	dur(&cfg.ConnectTimeout, "connect-timeout", "CONNECT_TIMEOUT", "close sessions that join no namespace within this time")
	cors = strings.Join(cfg.CORSOrigins, ",")
	str(&cors, "cors-origin", "CORS_ORIGIN", "comma-separated origins allowed besides the server's own; * allows all")
	hosts = strings.Join(cfg.AllowedHosts, ",")
	str(&hosts, "allowed-hosts", "ALLOWED_HOSTS", "comma-separated host names this server answers to besides IP addresses, localhost, its machine name and the -cors-origin hosts (against DNS rebinding); .example.com allows subdomains; * allows all; behind a proxy, your public name")
	boolean(&cfg.AllowEIO3, "allow-eio3", "ALLOW_EIO3", "accept Engine.IO v3 clients (socket.io-client 2.x)")
	dur(&cfg.Recovery, "recovery", "RECOVERY", "connection state recovery window, e.g. 2m; 0 is off")
	str(&cfg.Parser, "parser", "PARSER", "Socket.IO packet format: json (socket.io-parser), msgpack (socket.io-msgpack-parser) or auto (each client's own)")
	integer(&cfg.MaxConnections, "max-connections", "MAX_CONNECTIONS", "most concurrent sessions; more get 503")
	str(&cfg.WebSocketIO, "ws-io", "WS_IO", "how idle WebSocket connections wait: epoll (no goroutine each, Linux) or goroutine")
	boolean(&cfg.PollingKeepAlive, "polling-keepalive", "POLLING_KEEPALIVE", "with -ws-io epoll: serve a keep-alive connection's later long-polling requests on the event loop, without net/http")
	boolean(&cfg.WSFront, "ws-front", "WS_FRONT", "with -ws-io epoll: read a new connection's first request on the event loop and serve WebSocket handshakes without net/http (anything else goes to net/http)")
	boolean(&cfg.WSCompression, "ws-compression", "WS_COMPRESSION", "negotiate WebSocket compression (permessage-deflate) with clients that offer it")
	integer(&cfg.WSCompressionThreshold, "ws-compression-threshold", "WS_COMPRESSION_THRESHOLD", "with -ws-compression, the smallest WebSocket message sent compressed, bytes; 0 compresses all")
	integer(&cfg.MaxHTTPConnections, "max-http-connections", "MAX_HTTP_CONNECTIONS", "most TCP connections that are not WebSocket sessions (HTTP requests, long polls, idle keep-alive); more are closed")
	integer(&cfg.MaxPendingPerIP, "max-pending-per-ip", "MAX_PENDING_PER_IP", "most connections from one address that do not serve a session (slow or pending requests, idle keep-alive); more are closed; 0 is no limit")
	dur(&cfg.HTTPIdleTimeout, "http-idle-timeout", "HTTP_IDLE_TIMEOUT", "close keep-alive connections idle for this long")
	integer(&cfg.SendQueuePackets, "send-queue-packets", "SEND_QUEUE_PACKETS", "most packets queued for one client before it is disconnected")
	int64v(&cfg.SendQueueBytes, "send-queue-bytes", "SEND_QUEUE_BYTES", "most bytes queued for one client before it is disconnected")
	int64v(&cfg.QueueBudget, "queue-budget", "QUEUE_BUDGET", "most bytes queued for all clients together; past it the largest queues are disconnected first")
	float(&cfg.EventRate, "event-rate", "EVENT_RATE", "incoming events per second allowed per connection")
	integer(&cfg.EventBurst, "event-burst", "EVENT_BURST", "burst of events allowed per connection")
	integer(&cfg.MaxMessageBytes, "max-message-bytes", "MAX_MESSAGE_BYTES", "largest chat message, bytes")
	str(&cfg.Redis, "redis", "REDIS_URL", "Redis URL shared by several nodes, e.g. redis://127.0.0.1:6379/0, or a Redis Cluster: its nodes' URLs, comma-separated; empty is one node")
	str(&cfg.RedisPrefix, "redis-prefix", "REDIS_PREFIX", "Redis adapter key prefix, as Node's @socket.io/redis-adapter")
	str(&cfg.RedisAdapter, "redis-adapter", "REDIS_ADAPTER", "how nodes share -redis: pubsub (@socket.io/redis-adapter's createAdapter), sharded (its createShardedAdapter: Redis 7 sharded pub/sub) or streams (@socket.io/redis-streams-adapter; the stream is -redis-prefix)")
	boolean(&cfg.ClusterOrder, "cluster-order", "CLUSTER_ORDER", "with -redis-adapter streams: every node delivers every broadcast, its own included, in the stream's order, so all clients on all nodes see one conversation order (a Redis round trip more before a node's own clients see its broadcasts)")
	list(&cfg.Namespaces, "namespaces", "NAMESPACES", "more chat namespaces besides /, comma-separated (e.g. /n0,/n1): each a conversation of its own, user-message broadcast to its own clients (the benchmark's namespaces scenario)")
	str(&cfg.History, "history", "HISTORY", "store the chat's messages: a SQLite file (e.g. chat.db) or a postgres:// URL shared by a cluster; empty keeps none")
	integer(&cfg.HistoryLast, "history-last", "HISTORY_LAST", "messages sent on connect to a client without auth.serverOffset")
	integer(&cfg.HistoryMaxCatchup, "history-max-catchup", "HISTORY_MAX_CATCHUP", "most messages sent on connect after a client's auth.serverOffset (the newest); 0 is no limit")
	int64v(&cfg.HistoryMaxMessages, "history-max-messages", "HISTORY_MAX_MESSAGES", "retention: keep at most this many messages; 0 keeps all")
	dur(&cfg.HistoryMaxAge, "history-max-age", "HISTORY_MAX_AGE", "retention: delete messages older than this, e.g. 720h; 0 keeps all")
	dur(&cfg.HistoryTrimInterval, "history-trim-interval", "HISTORY_TRIM_INTERVAL", "how often retention runs")
	str(&cfg.HistorySync, "history-sync", "HISTORY_SYNC", "SQLite durability: full (an ack survives a power loss) or normal (a process crash)")
	dur(&cfg.HistoryPoll, "history-poll", "HISTORY_POLL", "how often a node reads the history for messages of other nodes it was not notified of")
	str(&cfg.MetricsAddr, "metrics-addr", "METRICS_ADDR", "serve Prometheus /metrics on this address, e.g. 127.0.0.1:9090 (a listener of its own); empty serves none")
	boolean(&cfg.Pprof, "pprof", "PPROF", "also serve /debug/pprof/ on -metrics-addr")
	boolean(&cfg.AdminUI, "admin-ui", "ADMIN_UI", "serve the Socket.IO Admin UI: the /admin namespace and the UI at /admin/")
	str(&cfg.AdminUIDir, "admin-ui-dir", "ADMIN_UI_DIR", "directory of the Admin UI's files (@socket.io/admin-ui's ui/dist)")
	str(&cfg.AdminUser, "admin-user", "ADMIN_USER", "Admin UI username")
	str(&cfg.AdminPasswordHash, "admin-password-hash", "ADMIN_PASSWORD_HASH", "bcrypt hash of the Admin UI password (prefer the environment: flags show in ps)")
	boolean(&cfg.AdminNoAuth, "admin-no-auth", "ADMIN_NO_AUTH", "let anyone use the Admin UI without a password (Node's auth: false)")
	boolean(&cfg.AdminReadOnly, "admin-readonly", "ADMIN_READONLY", "Admin UI read-only: no disconnect, join, leave or emit")
	dur(&cfg.DrainDelay, "drain-delay", "DRAIN_DELAY", "on SIGTERM, keep serving this long with /readyz answering 503 before closing")
	boolean(&cfg.Conformance, "conformance", "CONFORMANCE", "serve the Socket.IO and Engine.IO protocol test-suite endpoints instead of the chat")
	integer(&cfg.GCPercent, "gogc", "GC_PERCENT", "garbage collector target percentage (as GOGC); 0 keeps the runtime default")
	memLimit := ""
	str(&memLimit, "memory-limit", "MEMORY_LIMIT", "soft memory limit (as GOMEMLIMIT), e.g. 512MiB; empty keeps the runtime default")
	dur(&cfg.ShutdownGrace, "shutdown-grace", "SHUTDOWN_GRACE", "how long shutdown waits for clients to leave")
	str(&cfg.LogFormat, "log-format", "LOG_FORMAT", "log format: text or json")
	logLevel = "info"
	str(&logLevel, "log-level", "LOG_LEVEL", "log level: debug, info, warn or error")

	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if len(envErrors) > 0 {
		return cfg, errors.Join(envErrors...)
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return cfg, fmt.Errorf("-log-level %q: want debug, info, warn or error", logLevel)
	}
	cfg.CORSOrigins = splitList(cors)
	cfg.AllowedHosts = splitList(hosts)
	if memLimit != "" {
		n, err := parseBytes(memLimit)
		if err != nil {
			return cfg, fmt.Errorf("-memory-limit %q: %w", memLimit, err)
		}
		cfg.MemoryLimit = n
	}
	return cfg, cfg.Validate()
}

// Validate reports the first setting that cannot work, in words a user can act on.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		bad("-addr %q: want host:port or :port", c.Addr)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad("-addr %q: port must be a number from 0 to 65535", c.Addr)
	}
	if c.PublicDir == "" {
		bad("-public: must not be empty")
	}
	if !strings.HasPrefix(c.Path, "/") {
		bad("-path %q: must start with /", c.Path)
	} else if !strings.HasSuffix(c.Path, "/") {
		c.Path += "/"
	}
	if c.PingInterval <= 0 {
		bad("-ping-interval %v: must be positive", c.PingInterval)
	}
	if c.PingTimeout <= 0 {
		bad("-ping-timeout %v: must be positive", c.PingTimeout)
	}
	if c.MaxHTTPBufferSize <= 0 {
		bad("-max-http-buffer-size %d: must be positive", c.MaxHTTPBufferSize)
	}
	if c.ConnectTimeout <= 0 {
		bad("-connect-timeout %v: must be positive", c.ConnectTimeout)
	}
	for _, o := range c.CORSOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("-cors-origin %q: want an origin such as https://example.com or *", o)
		}
	}
	for _, h := range c.AllowedHosts {
		if h != "*" && !validHostPattern(h) {
			bad("-allowed-hosts %q: want host names such as chat.example.com or .example.com (no scheme, no port), or *", h)
		}
	}
	if c.Recovery < 0 {
		bad("-recovery %v: must not be negative", c.Recovery)
	}
	if _, err := socketio.ParserByName(c.Parser); err != nil {
		bad("-parser %q: want json, msgpack or auto", c.Parser)
	}
	if c.MaxConnections <= 0 {
		bad("-max-connections %d: must be positive", c.MaxConnections)
	}
	if c.WebSocketIO != "epoll" && c.WebSocketIO != "goroutine" {
		bad("-ws-io %q: want epoll or goroutine", c.WebSocketIO)
	}
	if c.WSCompressionThreshold < 0 {
		bad("-ws-compression-threshold %d: must not be negative (0 compresses every message)", c.WSCompressionThreshold)
	}
	if c.MaxHTTPConnections <= 0 {
		bad("-max-http-connections %d: must be positive", c.MaxHTTPConnections)
	}
	if c.MaxPendingPerIP < 0 {
		bad("-max-pending-per-ip %d: must not be negative (0 is no limit)", c.MaxPendingPerIP)
	}
	if c.HTTPIdleTimeout <= 0 {
		bad("-http-idle-timeout %v: must be positive", c.HTTPIdleTimeout)
	}
	if c.SendQueuePackets <= 0 {
		bad("-send-queue-packets %d: must be positive", c.SendQueuePackets)
	}
	if c.SendQueueBytes <= 0 {
		bad("-send-queue-bytes %d: must be positive", c.SendQueueBytes)
	}
	if c.QueueBudget < c.SendQueueBytes {
		bad("-queue-budget %d: must be at least -send-queue-bytes (%d)", c.QueueBudget, c.SendQueueBytes)
	}
	if c.EventRate <= 0 {
		bad("-event-rate %v: must be positive", c.EventRate)
	}
	if c.EventBurst <= 0 {
		bad("-event-burst %d: must be positive", c.EventBurst)
	}
	if c.MaxMessageBytes <= 0 {
		bad("-max-message-bytes %d: must be positive", c.MaxMessageBytes)
	}
	if c.Redis != "" {
		cluster := strings.Contains(c.Redis, ",")
		n := 0
		for _, one := range strings.Split(c.Redis, ",") {
			if one = strings.TrimSpace(one); one == "" && cluster {
				continue
			}
			n++
			u, err := url.Parse(one)
			if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
				bad("-redis %q: want a URL such as redis://127.0.0.1:6379/0, or a comma-separated list of a Redis Cluster's nodes", one)
			} else if cluster && (u.Scheme == "unix" || strings.Trim(u.Path, "/") != "" && strings.Trim(u.Path, "/") != "0") {
				bad("-redis %q: a Redis Cluster's nodes are redis:// or rediss:// addresses, database 0", one)
			}
		}
		if n == 0 {
			bad("-redis %q: no URL", c.Redis)
		}
	}
	switch c.RedisAdapter {
	case "pubsub", "sharded", "streams":
	default:
		bad("-redis-adapter %q: want pubsub, sharded or streams", c.RedisAdapter)
	}
	if c.ClusterOrder && (c.Redis == "" || c.RedisAdapter != "streams") {
		bad("-cluster-order: only with -redis and -redis-adapter streams (the order is the stream's)")
	}
	if c.RedisPrefix == "" {
		bad("-redis-prefix: must not be empty")
	}
	if scheme, ok := urlScheme(c.History); ok {
		switch strings.ToLower(scheme) {
		case "postgres", "postgresql", "file":
		default: // the rest of the URL is not shown: it may hold a password
			bad("-history %s://…: not a store this server knows: want a SQLite file (e.g. chat.db) or a postgres:// URL", scheme)
		}
	}
	if c.HistoryLast < 0 {
		bad("-history-last %d: must not be negative", c.HistoryLast)
	}
	if c.HistoryMaxCatchup < 0 {
		bad("-history-max-catchup %d: must not be negative (0 is no limit)", c.HistoryMaxCatchup)
	}
	if c.HistoryMaxMessages < 0 {
		bad("-history-max-messages %d: must not be negative (0 keeps all)", c.HistoryMaxMessages)
	}
	if c.HistoryMaxAge < 0 {
		bad("-history-max-age %v: must not be negative (0 keeps all)", c.HistoryMaxAge)
	}
	if c.HistoryTrimInterval <= 0 {
		bad("-history-trim-interval %v: must be positive", c.HistoryTrimInterval)
	}
	if c.HistorySync != "full" && c.HistorySync != "normal" {
		bad("-history-sync %q: want full or normal", c.HistorySync)
	}
	if c.HistoryPoll <= 0 {
		bad("-history-poll %v: must be positive", c.HistoryPoll)
	}
	for _, n := range c.Namespaces {
		if !strings.HasPrefix(n, "/") || n == "/" || n == "/admin" && c.AdminUI || strings.ContainsAny(n, ", ?#") {
			bad("-namespaces %q: want names such as /n0, other than / (and /admin with -admin-ui)", n)
		}
	}
	if len(c.Namespaces) > 0 && c.History != "" {
		bad("-namespaces with -history: the history stores the main namespace's messages only")
	}
	if c.Redis != "" && c.History != "" && !isPostgresDSN(c.History) {
		// Each node would keep its own history and broadcast only what it
		// stored itself: every message from another node would be lost.
		bad("-redis with a SQLite -history %q: the nodes would not see each other's messages; "+
			"give every node the same PostgreSQL history (-history postgres://…), or run one node without -redis", c.History)
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("-metrics-addr %q: want host:port or :port", c.MetricsAddr)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("-metrics-addr %q: port must be a number from 0 to 65535", c.MetricsAddr)
		}
	}
	if c.Pprof && c.MetricsAddr == "" {
		bad("-pprof: needs -metrics-addr (pprof is served on the metrics listener only)")
	}
	if c.AdminUI {
		hasAuth := c.AdminUser != "" || c.AdminPasswordHash != ""
		switch {
		case c.AdminNoAuth && hasAuth:
			bad("-admin-no-auth with -admin-user or -admin-password-hash: choose one")
		case !c.AdminNoAuth && (c.AdminUser == "" || c.AdminPasswordHash == ""):
			bad("-admin-ui: needs -admin-user and -admin-password-hash (a bcrypt hash: see docs/OPERATING.md), or -admin-no-auth to let anyone in")
		case !c.AdminNoAuth:
			if _, err := bcrypt.Cost([]byte(c.AdminPasswordHash)); err != nil {
				bad("-admin-password-hash: not a bcrypt hash ($2a$, $2b$ or $2y$…): %v%s", err, mangledHashHint(c.AdminPasswordHash))
			}
		}
		if c.AdminUIDir == "" {
			bad("-admin-ui-dir: must not be empty")
		}
	} else if set := c.adminFlagsSet(); len(set) > 0 {
		bad("%s: the Admin UI is off: add -admin-ui (ADMIN_UI=true), or drop them", strings.Join(set, ", "))
	}
	if c.DrainDelay < 0 {
		bad("-drain-delay %v: must not be negative", c.DrainDelay)
	}
	if c.Conformance && (c.MetricsAddr != "" || c.AdminUI) {
		bad("-conformance: serves the protocol test suites only, without -metrics-addr or -admin-ui")
	}
	if c.GCPercent < 0 {
		bad("-gogc %d: must not be negative", c.GCPercent)
	}
	if c.MemoryLimit < 0 {
		bad("-memory-limit %d: must not be negative", c.MemoryLimit)
	}
	if c.ShutdownGrace < 0 {
		bad("-shutdown-grace %v: must not be negative", c.ShutdownGrace)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("-log-format %q: want text or json", c.LogFormat)
	}
	return errors.Join(errs...)
}

// adminFlagsSet lists the -admin-* settings that differ from their
// defaults (they mean nothing without -admin-ui).
func (c *Config) adminFlagsSet() []string {
	var set []string
	for _, f := range []struct {
		name string
		on   bool
	}{
		{"-admin-ui-dir", c.AdminUIDir != DefaultConfig().AdminUIDir},
		{"-admin-user", c.AdminUser != ""},
		{"-admin-password-hash", c.AdminPasswordHash != ""},
		{"-admin-no-auth", c.AdminNoAuth},
		{"-admin-readonly", c.AdminReadOnly},
	} {
		if f.on {
			set = append(set, f.name)
		}
	}
	return set
}

// mangledHashHint explains the usual ways a bcrypt hash gets damaged on
// its way to the process, or returns "".
func mangledHashHint(h string) string {
	switch {
	case len(h) >= 2 && (h[0] == '"' || h[0] == '\'') && h[len(h)-1] == h[0]:
		return "; it is wrapped in quotes, which an env file or a compose file keeps: remove them"
	case len(h) >= 2 && !strings.HasPrefix(h, "$") && strings.ContainsRune("aby", rune(h[0])) && h[1] >= '0' && h[1] <= '9':
		return "; it looks like a shell expanded its $ signs ($2a$10$… in double quotes becomes a0…): " +
			"put it in single quotes, or read it from a file (ADMIN_PASSWORD_HASH=\"$(cat hash.txt)\"); in a compose file write each $ as $$"
	case strings.HasPrefix(h, "$2") && len(h) != 60:
		return "; a bcrypt hash is 60 characters long: was part of it cut, or taken for variables ($…) by a shell or a compose file?"
	}
	return ""
}

// urlScheme returns the scheme of a value written as a URL (scheme://…).
func urlScheme(v string) (string, bool) {
	scheme, _, ok := strings.Cut(v, "://")
	if !ok || scheme == "" {
		return "", false
	}
	for i, r := range scheme {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return "", false
		}
	}
	return scheme, true
}

// CheckFiles reports what the server needs from the file system and does
// not find: the -public directory. main calls it at start-up, after
// ParseConfig, and refuses to start (exit 2) when it fails; it is not part
// of Validate, which looks at the settings only. (A directory without
// index.html is allowed: a site of other pages, as test/pages.)
func (c *Config) CheckFiles() error {
	if c.Conformance {
		return nil // serves no page
	}
	if st, err := os.Stat(c.PublicDir); err != nil || !st.IsDir() {
		abs, _ := filepath.Abs(c.PublicDir)
		return fmt.Errorf("-public %q (%s): no such directory, so / would answer 404: "+
			"start the server from the repository's root, or point -public (PUBLIC_DIR) at the directory of index.html", c.PublicDir, abs)
	}
	return nil
}

// validHostPattern reports whether h is a host name, or a domain with a
// leading dot: letters, digits, hyphens, underscores and dots.
func validHostPattern(h string) bool {
	name := strings.TrimSuffix(strings.TrimPrefix(h, "."), ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, strings.TrimRight(part, "/"))
		}
	}
	return out
}

// parseBytes reads a size such as 512MiB, 1GB or 1048576.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	num := strings.TrimSpace(s)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("want a size such as 512MiB, 1GB or 1048576")
	}
	return n * mult, nil
}
