package chat

import (
	"errors"
	"io"
	"log/slog"
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
			"-allow-eio3", "-recovery", "2m", "-log-format", "json", "-log-level", "debug",
		}, nil, func(t *testing.T, c Config) {
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
		{"env fallbacks", nil, map[string]string{
			"PUBLIC_DIR": "site", "SOCKETIO_PATH": "/io", "PING_INTERVAL": "10s", "PING_TIMEOUT": "4s",
			"MAX_HTTP_BUFFER_SIZE": "5000", "CONNECT_TIMEOUT": "30s", "CORS_ORIGIN": "*", "ALLOW_EIO3": "true",
			"RECOVERY": "90s", "LOG_FORMAT": "json", "LOG_LEVEL": "warn", "REDIS_URL": "redis://127.0.0.1:6379/0",
		}, func(t *testing.T, c Config) {
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
		{"duration without unit", []string{"-ping-timeout", "20"}, nil, []string{"-ping-timeout"}},
		{"zero ping interval", []string{"-ping-interval", "0s"}, nil, []string{"-ping-interval", "positive"}},
		{"negative ping timeout", []string{"-ping-timeout", "-1s"}, nil, []string{"-ping-timeout"}},
		{"negative connect timeout", []string{"-connect-timeout", "-5s"}, nil, []string{"-connect-timeout"}},
		{"negative recovery", []string{"-recovery", "-1m"}, nil, []string{"-recovery", "negative"}},
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
		"ADDR", "RECOVERY", "CORS_ORIGIN", "LOG_FORMAT",
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
