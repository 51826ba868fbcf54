package chat

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// confEnv is a getenv over a fixed map.
func confEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigDefaultsAreNodes(t *testing.T) {
	cfg, err := ParseConfig(nil, confEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Addr", cfg.Addr, ":9000"},
		{"Path", cfg.Path, "/socket.io/"},
		{"PublicDir", cfg.PublicDir, "public"},
		{"ClientDir", cfg.ClientDir, "node_modules/socket.io-client/dist"},
		{"PingInterval", cfg.PingInterval, 25 * time.Second},
		{"PingTimeout", cfg.PingTimeout, 20 * time.Second},
		{"MaxHTTPBufferSize", cfg.MaxHTTPBufferSize, int64(1e6)},
		{"ConnectTimeout", cfg.ConnectTimeout, 45 * time.Second},
		{"Recovery", cfg.Recovery, time.Duration(0)},
		{"AllowEIO3", cfg.AllowEIO3, false},
		{"CORSOrigins", len(cfg.CORSOrigins), 0},
		{"Redis", cfg.Redis, ""},
		{"LogFormat", cfg.LogFormat, "text"},
		{"LogLevel", cfg.LogLevel, slog.LevelInfo},
		{"WSCompression", cfg.WSCompression, false}, // Node's perMessageDeflate: false
		{"WSCompressionThreshold", cfg.WSCompressionThreshold, 1024},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("default %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if want := DefaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("parseConfig with no flags and no env = %+v, want DefaultConfig() %+v", cfg, want)
	}
}

func TestConfigParse(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		{"PORT", nil, map[string]string{"PORT": "8080"}, func(t *testing.T, c Config) { confEq(t, "Addr", c.Addr, ":8080") }},
		{"ADDR beats PORT", nil, map[string]string{"PORT": "8080", "ADDR": "127.0.0.1:7000"},
			func(t *testing.T, c Config) { confEq(t, "Addr", c.Addr, "127.0.0.1:7000") }},
		{"-addr beats ADDR and PORT", []string{"-addr", "localhost:6000"}, map[string]string{"PORT": "8080", "ADDR": "127.0.0.1:7000"},
			func(t *testing.T, c Config) { confEq(t, "Addr", c.Addr, "localhost:6000") }},
		{"-addr beats PORT", []string{"-addr=:5000"}, map[string]string{"PORT": "8080"},
			func(t *testing.T, c Config) { confEq(t, "Addr", c.Addr, ":5000") }},
		{"every flag", []string{
			"-addr", "127.0.0.1:0", "-public", "www", "-path", "/chat/", "-ping-interval", "5s", "-ping-timeout", "3s",
			"-max-http-buffer-size", "2048", "-connect-timeout", "1m", "-cors-origin", "https://a.example, http://b.example:8080/",
			"-allow-eio3", "-recovery", "2m", "-log-format", "json", "-log-level", "debug", "-parser", "msgpack",
		}, nil, func(t *testing.T, c Config) {
			confEq(t, "Parser", c.Parser, "msgpack")
			confEq(t, "Addr", c.Addr, "127.0.0.1:0")
			confEq(t, "PublicDir", c.PublicDir, "www")
			confEq(t, "Path", c.Path, "/chat/")
			confEq(t, "PingInterval", c.PingInterval, 5*time.Second)
			confEq(t, "PingTimeout", c.PingTimeout, 3*time.Second)
			confEq(t, "MaxHTTPBufferSize", c.MaxHTTPBufferSize, int64(2048))
			confEq(t, "ConnectTimeout", c.ConnectTimeout, time.Minute)
			confEq(t, "CORSOrigins", c.CORSOrigins, []string{"https://a.example", "http://b.example:8080"})
			confEq(t, "AllowEIO3", c.AllowEIO3, true)
			confEq(t, "Recovery", c.Recovery, 2*time.Minute)
			confEq(t, "LogFormat", c.LogFormat, "json")
			confEq(t, "LogLevel", c.LogLevel, slog.LevelDebug)
		}},
		{"-namespaces", []string{"-namespaces", " /n0, /n1,"}, nil,
			func(t *testing.T, c Config) { confEq(t, "Namespaces", c.Namespaces, []string{"/n0", "/n1"}) }},
		{"NAMESPACES", nil, map[string]string{"NAMESPACES": "/a,/b"},
			func(t *testing.T, c Config) { confEq(t, "Namespaces", c.Namespaces, []string{"/a", "/b"}) }},
		{"env fallbacks", nil, map[string]string{
			"PUBLIC_DIR": "site", "SOCKETIO_PATH": "/io", "PING_INTERVAL": "10s", "PING_TIMEOUT": "4s",
			"MAX_HTTP_BUFFER_SIZE": "5000", "CONNECT_TIMEOUT": "30s", "CORS_ORIGIN": "*", "ALLOW_EIO3": "true",
			"RECOVERY": "90s", "LOG_FORMAT": "json", "LOG_LEVEL": "warn", "REDIS_URL": "redis://127.0.0.1:6379/0",
			"PARSER": "auto",
		}, func(t *testing.T, c Config) {
			confEq(t, "Parser", c.Parser, "auto")
			confEq(t, "PublicDir", c.PublicDir, "site")
			confEq(t, "Path", c.Path, "/io/") // a trailing slash is added
			confEq(t, "PingInterval", c.PingInterval, 10*time.Second)
			confEq(t, "PingTimeout", c.PingTimeout, 4*time.Second)
			confEq(t, "MaxHTTPBufferSize", c.MaxHTTPBufferSize, int64(5000))
			confEq(t, "ConnectTimeout", c.ConnectTimeout, 30*time.Second)
			confEq(t, "CORSOrigins", c.CORSOrigins, []string{"*"})
			confEq(t, "AllowEIO3", c.AllowEIO3, true)
			confEq(t, "Recovery", c.Recovery, 90*time.Second)
			confEq(t, "LogFormat", c.LogFormat, "json")
			confEq(t, "LogLevel", c.LogLevel, slog.LevelWarn)
			confEq(t, "Redis", c.Redis, "redis://127.0.0.1:6379/0")
		}},
		{"flags beat env", []string{"-recovery", "0", "-ping-interval", "1s", "-allow-eio3=false", "-log-level", "error"},
			map[string]string{"RECOVERY": "2m", "PING_INTERVAL": "10s", "ALLOW_EIO3": "1", "LOG_LEVEL": "debug"},
			func(t *testing.T, c Config) {
				confEq(t, "Recovery", c.Recovery, time.Duration(0))
				confEq(t, "PingInterval", c.PingInterval, time.Second)
				confEq(t, "AllowEIO3", c.AllowEIO3, false)
				confEq(t, "LogLevel", c.LogLevel, slog.LevelError)
			}},
		{"queue budget", []string{"-queue-budget", "1073741824"}, map[string]string{"QUEUE_BUDGET": "5"},
			func(t *testing.T, c Config) { confEq(t, "QueueBudget", c.QueueBudget, int64(1<<30)) }},
		{"queue budget from env", nil, map[string]string{"QUEUE_BUDGET": "536870912"},
			func(t *testing.T, c Config) { confEq(t, "QueueBudget", c.QueueBudget, int64(512<<20)) }},
		{"allowed hosts", []string{"-allowed-hosts", "chat.example.com, .corp.example,"}, nil, func(t *testing.T, c Config) {
			confEq(t, "AllowedHosts", c.AllowedHosts, []string{"chat.example.com", ".corp.example"})
		}},
		{"env ALLOWED_HOSTS", nil, map[string]string{"ALLOWED_HOSTS": "*"}, func(t *testing.T, c Config) {
			confEq(t, "AllowedHosts", c.AllowedHosts, []string{"*"})
		}},
		{"SQLite history names", []string{"-history", "file:chat.db?mode=rwc"}, nil, func(t *testing.T, c Config) {
			confEq(t, "History", c.History, "file:chat.db?mode=rwc")
		}},
		{"redis adapter", []string{"-redis-adapter", "streams"}, map[string]string{"REDIS_ADAPTER": "pubsub"},
			func(t *testing.T, c Config) { confEq(t, "RedisAdapter", c.RedisAdapter, "streams") }},
		{"env redis adapter", nil, map[string]string{"REDIS_ADAPTER": "streams"},
			func(t *testing.T, c Config) { confEq(t, "RedisAdapter", c.RedisAdapter, "streams") }},
		{"ws compression", []string{"-ws-compression", "-ws-compression-threshold", "0"}, nil,
			func(t *testing.T, c Config) {
				confEq(t, "WSCompression", c.WSCompression, true)
				confEq(t, "WSCompressionThreshold", c.WSCompressionThreshold, 0)
			}},
		{"ws compression from env", nil, map[string]string{"WS_COMPRESSION": "true", "WS_COMPRESSION_THRESHOLD": "256"},
			func(t *testing.T, c Config) {
				confEq(t, "WSCompression", c.WSCompression, true)
				confEq(t, "WSCompressionThreshold", c.WSCompressionThreshold, 256)
			}},
		{"unrelated env ignored", nil, map[string]string{"HOME": "/root", "PATH": "/bin"},
			func(t *testing.T, c Config) { confEq(t, "Config", c, DefaultConfig()) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(tc.args, confEnv(tc.env), io.Discard)
			if err != nil {
				t.Fatalf("ParseConfig(%q, %v): %v", tc.args, tc.env, err)
			}
			tc.check(t, c)
		})
	}
}

func confEq(t *testing.T, name string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", name, got, want)
	}
}

func TestConfigRejects(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want []string // each must appear in the error
	}{
		{"bad duration", []string{"-ping-interval", "soon"}, nil, []string{"-ping-interval", "soon"}},
		{"namespace without slash", []string{"-namespaces", "/n0,n1"}, nil, []string{"-namespaces", "n1"}},
		{"main namespace in -namespaces", nil, map[string]string{"NAMESPACES": "/"}, []string{"-namespaces"}},
		{"namespaces with history", []string{"-namespaces", "/n0", "-history", "chat.db"}, nil, []string{"-namespaces", "-history"}},
		{"duration without unit", []string{"-ping-timeout", "20"}, nil, []string{"-ping-timeout"}},
		{"zero ping interval", []string{"-ping-interval", "0s"}, nil, []string{"-ping-interval", "positive"}},
		{"negative ping timeout", []string{"-ping-timeout", "-1s"}, nil, []string{"-ping-timeout"}},
		{"negative connect timeout", []string{"-connect-timeout", "-5s"}, nil, []string{"-connect-timeout"}},
		{"negative recovery", []string{"-recovery", "-1m"}, nil, []string{"-recovery", "negative"}},
		{"unknown parser", []string{"-parser", "protobuf"}, nil, []string{"-parser", "protobuf"}},
		{"unknown parser in env", nil, map[string]string{"PARSER": "JSON"}, []string{"-parser", "JSON"}},
		{"negative buffer size", []string{"-max-http-buffer-size", "-1"}, nil, []string{"-max-http-buffer-size"}},
		{"zero buffer size", []string{"-max-http-buffer-size", "0"}, nil, []string{"-max-http-buffer-size"}},
		{"buffer size not a number", []string{"-max-http-buffer-size", "1MB"}, nil, []string{"-max-http-buffer-size", "1MB"}},
		{"bad log format", []string{"-log-format", "xml"}, nil, []string{"-log-format", "xml"}},
		{"bad log level", []string{"-log-level", "loud"}, nil, []string{"-log-level", "loud"}},
		{"cors origin without scheme", []string{"-cors-origin", "example.com"}, nil, []string{"-cors-origin", "example.com"}},
		{"cors origin with path", []string{"-cors-origin", "https://example.com/app"}, nil, []string{"-cors-origin"}},
		{"cors origin ftp", []string{"-cors-origin", "https://ok.example,ftp://example.com"}, nil, []string{"-cors-origin", "ftp://example.com"}},
		{"bad redis URL", []string{"-redis", "http://127.0.0.1:6379"}, nil, []string{"-redis"}},
		{"redis without scheme", []string{"-redis", "127.0.0.1:6379"}, nil, []string{"-redis"}},
		{"bad redis adapter", []string{"-redis-adapter", "sharded-ish"}, nil, []string{"-redis-adapter", "sharded-ish"}},
		{"bad env redis adapter", nil, map[string]string{"REDIS_ADAPTER": "stream"}, []string{"-redis-adapter", "stream"}},
		{"bad addr", []string{"-addr", "9000"}, nil, []string{"-addr", "9000"}},
		{"bad port", []string{"-addr", ":99999"}, nil, []string{"-addr"}},
		{"bad path", []string{"-path", "socket.io"}, nil, []string{"-path"}},
		{"empty public", []string{"-public", ""}, nil, []string{"-public"}},
		{"bad bool", []string{"-allow-eio3=maybe"}, nil, []string{"-allow-eio3"}},
		{"unknown flag", []string{"-port", "9000"}, nil, []string{"-port"}},
		{"extra argument", []string{"-addr", ":9000", "extra"}, nil, []string{"extra"}},
		{"bad env duration", nil, map[string]string{"PING_INTERVAL": "abc"}, []string{"PING_INTERVAL", "abc"}},
		{"bad env recovery", nil, map[string]string{"RECOVERY": "2 minutes"}, []string{"RECOVERY"}},
		{"bad env size", nil, map[string]string{"MAX_HTTP_BUFFER_SIZE": "big"}, []string{"MAX_HTTP_BUFFER_SIZE", "big"}},
		{"bad env bool", nil, map[string]string{"ALLOW_EIO3": "maybe"}, []string{"ALLOW_EIO3", "maybe"}},
		{"bad env log level", nil, map[string]string{"LOG_LEVEL": "chatty"}, []string{"-log-level", "chatty"}},
		{"bad env cors origin", nil, map[string]string{"CORS_ORIGIN": "not an origin"}, []string{"-cors-origin"}},
		{"bad PORT", nil, map[string]string{"PORT": "http"}, []string{"-addr", ":http"}},
		{"queue budget below one queue", []string{"-queue-budget", "1000"}, nil, []string{"-queue-budget", "-send-queue-bytes"}},
		{"negative ws compression threshold", []string{"-ws-compression-threshold", "-1"}, nil, []string{"-ws-compression-threshold", "negative"}},
		{"bad env ws compression", nil, map[string]string{"WS_COMPRESSION": "gzip"}, []string{"WS_COMPRESSION", "gzip"}},
		{"bad env queue budget", nil, map[string]string{"QUEUE_BUDGET": "1GB"}, []string{"QUEUE_BUDGET", "1GB"}},
		{"allowed host with scheme", []string{"-allowed-hosts", "https://chat.example"}, nil, []string{"-allowed-hosts", "https://chat.example", "no scheme"}},
		{"allowed host with port", []string{"-allowed-hosts", "chat.example:443"}, nil, []string{"-allowed-hosts", "chat.example:443"}},
		{"bad env allowed hosts", nil, map[string]string{"ALLOWED_HOSTS": "ok.example, not a name"}, []string{"-allowed-hosts", "not a name"}},
		{"admin user without admin UI", []string{"-admin-user", "admin"}, nil, []string{"-admin-user", "-admin-ui"}},
		{"admin env without admin UI", nil, map[string]string{"ADMIN_PASSWORD_HASH": "$2a$10$x", "ADMIN_READONLY": "true"},
			[]string{"-admin-password-hash", "-admin-readonly", "-admin-ui"}},
		{"admin UI dir without admin UI", []string{"-admin-ui-dir", "ui"}, nil, []string{"-admin-ui-dir", "-admin-ui"}},
		{"admin no auth without admin UI", []string{"-admin-no-auth"}, nil, []string{"-admin-no-auth", "-admin-ui"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			_, err := ParseConfig(tc.args, confEnv(tc.env), &out)
			if err == nil {
				t.Fatalf("ParseConfig(%q, %v) succeeded, want an error", tc.args, tc.env)
			}
			if errors.Is(err, ErrHelp) {
				t.Fatalf("ParseConfig(%q) = ErrHelp, want a validation error", tc.args)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConfigHelp(t *testing.T) {
	var out strings.Builder
	_, err := ParseConfig([]string{"-h"}, confEnv(nil), &out)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("ParseConfig(-h) error = %v, want ErrHelp", err)
	}
	// Every flag is documented with its environment variable.
	for _, w := range []string{
		"-addr", "PORT", "-public", "-ping-interval", "-ping-timeout", "-max-http-buffer-size",
		"-connect-timeout", "-cors-origin", "-allow-eio3", "-recovery", "-log-format", "-log-level",
		"ADDR", "RECOVERY", "CORS_ORIGIN", "LOG_FORMAT", "-parser", "PARSER", "-allowed-hosts", "ALLOWED_HOSTS",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("usage does not mention %q:\n%s", w, out.String())
		}
	}
}

// TestQueueBudgetReachesTheEngine: -queue-budget is the engine's
// QueueBudget, as -send-queue-bytes its MaxQueuedBytes.
func TestQueueBudgetReachesTheEngine(t *testing.T) {
	cfg, err := ParseConfig([]string{"-queue-budget", "300000000", "-send-queue-bytes", "1000000"}, confEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	e := (&Server{cfg: cfg}).socketOptions().Engine
	if e.QueueBudget != 300_000_000 || e.MaxQueuedBytes != 1_000_000 {
		t.Errorf("engine options QueueBudget %d, MaxQueuedBytes %d; want 300000000, 1000000", e.QueueBudget, e.MaxQueuedBytes)
	}
}

// -history takes a SQLite file or a postgres:// URL; another URL scheme is
// refused by name, without showing the rest of the URL (it was taken for a
// SQLite file name and failed with "unable to open database file (14)").
func TestConfigHistorySchemes(t *testing.T) {
	for _, dsn := range []string{"mysql://root:secret@db/chat", "sqlite:///var/lib/chat.db", "redis://secret@127.0.0.1/0", "HTTP://secret@x"} {
		_, err := ParseConfig([]string{"-history", dsn}, confEnv(nil), io.Discard)
		scheme, _, _ := strings.Cut(dsn, "://")
		if err == nil || !strings.Contains(err.Error(), "-history "+scheme+"://") || !strings.Contains(err.Error(), "postgres://") ||
			strings.Contains(err.Error(), "secret") {
			t.Errorf("-history %s: %v; want an error naming the scheme and postgres://, without the rest", dsn, err)
		}
	}
	for _, dsn := range []string{"chat.db", "/var/lib/chat/chat.db", "file:chat.db", "file:///tmp/chat.db", "postgres://db/chat", "PostgreSQL://db/chat", "./a://b.db"} {
		if _, err := ParseConfig([]string{"-history", dsn}, confEnv(nil), io.Discard); err != nil {
			t.Errorf("-history %s: %v", dsn, err)
		}
	}
}

// A bcrypt hash damaged on its way (a shell's double quotes ate its $
// signs, quotes kept by an env file, a compose file's $ interpolation)
// gets a hint that says how.
func TestConfigMangledHashHint(t *testing.T) {
	const hash = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
	for _, tc := range []struct{ value, want string }{
		{"a0", "single quotes"},           // "$2a$10$N9qo…" in a shell
		{"b2", "single quotes"},           // "$2b$12$…"
		{`"` + hash + `"`, "remove them"}, // ADMIN_PASSWORD_HASH="$2a$…" in an env file
		{"'" + hash + "'", "remove them"}, //
		{"$2a$10$", "60 characters"},      // the rest taken for a variable
		{hash[:40], "60 characters"},      // cut
		{"changeit", "bcrypt"},            // a password, not a hash: no guess
	} {
		_, err := ParseConfig([]string{"-admin-ui", "-admin-user", "admin", "-admin-password-hash", tc.value}, confEnv(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "-admin-password-hash") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("hash %q: %v; want a hint mentioning %q", tc.value, err, tc.want)
		}
	}
	if _, err := ParseConfig([]string{"-admin-ui", "-admin-user", "admin", "-admin-password-hash", hash}, confEnv(nil), io.Discard); err != nil {
		t.Errorf("a good hash: %v", err)
	}
}

// CheckFiles refuses a -public that does not exist (the server started and
// answered 404 at /).
func TestConfigCheckFiles(t *testing.T) {
	dir := t.TempDir()
	c := DefaultConfig()
	c.PublicDir = filepath.Join(dir, "missing")
	if err := c.CheckFiles(); err == nil || !strings.Contains(err.Error(), "-public") || !strings.Contains(err.Error(), "no such directory") {
		t.Errorf("missing directory: %v, want an error naming -public", err)
	}
	file := filepath.Join(dir, "index.html")
	if err := os.WriteFile(file, []byte("<title>chat</title>"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.PublicDir = file
	if err := c.CheckFiles(); err == nil {
		t.Error("a file as -public: no error")
	}
	c.PublicDir = dir
	if err := c.CheckFiles(); err != nil {
		t.Errorf("a directory: %v", err)
	}
	c.PublicDir, c.Conformance = filepath.Join(dir, "missing"), true
	if err := c.CheckFiles(); err != nil {
		t.Errorf("-conformance serves no page: %v", err)
	}
}
