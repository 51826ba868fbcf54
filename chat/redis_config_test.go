package chat

import (
	"strings"
	"testing"
)

// -redis takes a Redis Cluster as the list of its nodes; -redis-adapter
// (REDIS_ADAPTER) picks pubsub, the default, or sharded.
func TestConfigRedisClusterAndAdapter(t *testing.T) {
	var out strings.Builder
	c, err := ParseConfig(nil, confEnv(nil), &out)
	if err != nil {
		t.Fatal(err)
	}
	confEq(t, "RedisAdapter", c.RedisAdapter, "pubsub")
	nodes := "redis://10.0.0.1:7000,redis://10.0.0.2:7000, rediss://u:p@10.0.0.3:7000/0"
	c, err = ParseConfig([]string{"-redis", nodes, "-redis-adapter", "sharded"}, confEnv(nil), &out)
	if err != nil {
		t.Fatal(err)
	}
	confEq(t, "Redis", c.Redis, nodes)
	confEq(t, "RedisAdapter", c.RedisAdapter, "sharded")
	c, err = ParseConfig(nil, confEnv(map[string]string{"REDIS_URL": "redis://10.0.0.1:7000,", "REDIS_ADAPTER": "sharded"}), &out)
	if err != nil {
		t.Fatal(err)
	}
	confEq(t, "RedisAdapter", c.RedisAdapter, "sharded")

	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"unknown adapter", []string{"-redis-adapter", "kafka"}, nil, []string{"-redis-adapter", "kafka"}},
		{"unknown adapter in env", nil, map[string]string{"REDIS_ADAPTER": "Sharded"}, []string{"-redis-adapter", "Sharded"}},
		{"cluster node not a URL", []string{"-redis", "redis://10.0.0.1:7000,10.0.0.2:7000"}, nil, []string{"-redis", "10.0.0.2:7000"}},
		{"cluster node with a database", []string{"-redis", "redis://10.0.0.1:7000,redis://10.0.0.2:7000/3"}, nil, []string{"-redis", "database 0"}},
		{"cluster node on a unix socket", []string{"-redis", "redis://10.0.0.1:7000,unix:///tmp/r.sock"}, nil, []string{"-redis", "unix:///tmp/r.sock"}},
		{"only commas", []string{"-redis", ",,"}, nil, []string{"-redis", "no URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(tc.args, confEnv(tc.env), &out)
			if err == nil {
				t.Fatalf("ParseConfig(%q, %v) succeeded, want an error", tc.args, tc.env)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// -cluster-order (CLUSTER_ORDER) is off by default, and only valid with
// -redis and -redis-adapter streams: the order is the stream's.
func TestConfigClusterOrder(t *testing.T) {
	var out strings.Builder
	c, err := ParseConfig(nil, confEnv(nil), &out)
	if err != nil {
		t.Fatal(err)
	}
	confEq(t, "ClusterOrder", c.ClusterOrder, false)
	c, err = ParseConfig([]string{"-redis", "redis://127.0.0.1:6379/0", "-redis-adapter", "streams", "-cluster-order"}, confEnv(nil), &out)
	if err != nil {
		t.Fatal(err)
	}
	confEq(t, "ClusterOrder", c.ClusterOrder, true)
	c, err = ParseConfig(nil, confEnv(map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0", "REDIS_ADAPTER": "streams", "CLUSTER_ORDER": "true"}), &out)
	if err != nil {
		t.Fatal(err)
	}
	confEq(t, "ClusterOrder", c.ClusterOrder, true)

	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"without -redis", []string{"-cluster-order"}, nil, "-cluster-order"},
		{"with pubsub", []string{"-redis", "redis://127.0.0.1:6379/0", "-cluster-order"}, nil, "-cluster-order"},
		{"with sharded in env", nil, map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0", "REDIS_ADAPTER": "sharded", "CLUSTER_ORDER": "1"}, "-cluster-order"},
		{"not a boolean", nil, map[string]string{"CLUSTER_ORDER": "yes please"}, "CLUSTER_ORDER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(tc.args, confEnv(tc.env), &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConfig(%q, %v) = %v, want an error about %s", tc.args, tc.env, err, tc.want)
			}
		})
	}
}
