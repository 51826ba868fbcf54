// Package redisconn opens the Redis client of the cluster adapters from the
// -redis value: one URL is a single Redis server (or a primary), a
// comma-separated list of URLs is a Redis Cluster, the list being its seed
// nodes, as the rootNodes of Node's createCluster.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// IsCluster reports whether urls names a Redis Cluster: a comma-separated
// list (a single URL followed by a comma counts, for a cluster known by one
// seed).
func IsCluster(urls string) bool { return strings.Contains(urls, ",") }

// Open returns the client for urls (see the package doc) and a text naming
// the server(s) for the logs. Every node of a cluster takes the options
// (user, password, TLS) of the first URL; their database number must be 0.
// The client speaks RESP2, as Node's redis client (see redisadapter: go-redis
// misreads pub/sub messages cut across reads under RESP3).
func Open(urls, clientName string, opts ...Option) (redis.UniversalClient, string, error) {
	QuietLogs()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if !IsCluster(urls) {
		o, err := redis.ParseURL(urls)
		if err != nil {
			return nil, "", fmt.Errorf("redis url: %w", err)
		}
		o.ClientName = clientName
		o.Protocol = 2
		if cfg.noRetry {
			o.MaxRetries = -1
		}
		return redis.NewClient(o), o.Addr, nil
	}
	var first *redis.Options
	var addrs []string
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		o, err := redis.ParseURL(u)
		if err != nil {
			return nil, "", fmt.Errorf("redis url %q: %w", u, err)
		}
		if o.DB != 0 {
			return nil, "", fmt.Errorf("redis url %q: a Redis Cluster has database 0 only", u)
		}
		if o.Network == "unix" {
			return nil, "", fmt.Errorf("redis url %q: cluster nodes are TCP addresses", u)
		}
		if first == nil {
			first = o
		}
		addrs = append(addrs, o.Addr)
	}
	if first == nil {
		return nil, "", errors.New("redis: empty list of cluster nodes")
	}
	co := &redis.ClusterOptions{
		Addrs:      addrs,
		ClientName: clientName,
		Protocol:   2,
		Username:   first.Username,
		Password:   first.Password,
		TLSConfig:  first.TLSConfig,
	}
	if cfg.noRetry {
		co.MaxRetries = -1
	}
	c := redis.NewClusterClient(co)
	return c, "cluster " + strings.Join(addrs, ","), nil
}

// Option tunes the client Open returns.
type Option func(*config)

type config struct{ noRetry bool }

// NoRetry makes the client send a command once: go-redis does not send it
// again on a new connection when its connection failed. A writer that
// retries by itself, and must not add a stream entry twice, asks for it.
// (A cluster client still follows MOVED and ASK redirections.)
func NoRetry() Option { return func(c *config) { c.noRetry = true } }

// NumSub returns the number of subscribers of channel over the whole
// deployment: a subscription is known only to the node it was made on, so
// on a cluster every node (primaries and replicas) is asked and the counts
// summed. shard selects sharded channels (PUBSUB SHARDNUMSUB).
func NumSub(ctx context.Context, c redis.UniversalClient, channel string, shard bool) (int64, error) {
	one := func(ctx context.Context, c redis.UniversalClient) (int64, error) {
		var (
			m   map[string]int64
			err error
		)
		if shard {
			m, err = c.PubSubShardNumSub(ctx, channel).Result()
		} else {
			m, err = c.PubSubNumSub(ctx, channel).Result()
		}
		return m[channel], err
	}
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return one(ctx, c)
	}
	var (
		mu  sync.Mutex
		sum int64
	)
	err := cc.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
		n, err := one(ctx, node)
		mu.Lock()
		sum += n
		mu.Unlock()
		return err
	})
	return sum, err
}

var quietOnce sync.Once

// QuietLogs sends go-redis's own log lines (one per failed dial during an
// outage) to slog at debug level: the adapters log an outage once.
func QuietLogs() {
	quietOnce.Do(func() { redis.SetLogger(debugLogger{}) })
}

type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

// Publisher returns the client that classic PUBLISH commands go through:
// c itself on a single Redis; on a cluster, the primary of key's slot. Any
// node of a cluster relays a PUBLISH to every other over the cluster bus,
// so go-redis sends each PUBLISH (a keyless command to it) to a random
// node: two messages of one sender then travel through different nodes
// and can reach a subscriber out of order. Through one node they keep
// their order. After a failover, the next call names the new primary.
func Publisher(ctx context.Context, c redis.UniversalClient, key string) redis.UniversalClient {
	if cc, ok := c.(*redis.ClusterClient); ok {
		if m, err := cc.MasterForKey(ctx, key); err == nil {
			return m
		}
	}
	return c
}

// Ping checks that every node answers (every shard, on a cluster).
func Ping(ctx context.Context, c redis.UniversalClient) error {
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
			return node.Ping(ctx).Err()
		})
	}
	return c.Ping(ctx).Err()
}
