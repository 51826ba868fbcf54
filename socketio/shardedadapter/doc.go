// Package shardedadapter is a socketio.Adapter that joins the servers of a
// cluster through Redis 7 sharded pub/sub (SPUBLISH/SSUBSCRIBE), speaking
// the wire format of Node's @socket.io/redis-adapter createShardedAdapter
// (checked against 8.3.0, on socket.io-adapter 2.5's ClusterAdapter), so
// that Go and Node.js nodes serve the same clients side by side, on a
// single Redis 7 or on a Redis Cluster:
//
//	ad, err := shardedadapter.New(shardedadapter.Options{URL: "redis://10.0.0.1:7000,redis://10.0.0.2:7000"})
//	...
//	srv, err := socketio.NewServer(socketio.Options{Adapter: ad})
//
// Channels (Node's defaults: channelPrefix "socket.io", subscriptionMode
// "dynamic"): socket.io#<nsp># carries every message of a namespace but two
// kinds; socket.io#<nsp>#<uid># carries the answers to the requests of the
// node whose adapter has that uid; socket.io#<nsp>#<room># carries the
// broadcasts without ack to exactly that one room, when the room does not
// look like a socket id (20 characters). A node subscribes to a room's
// channel while the room has a member on it (a socket's own room aside).
// On a Redis Cluster each channel lives on the shard of its hash slot, so
// the traffic of busy rooms spreads over the primaries, where classic
// pub/sub copies every message to every node of the cluster.
//
// Messages are socket.io-adapter's ClusterMessage, {type, data, uid, nsp}:
// JSON as JSON.stringify writes it, or msgpack (notepack.io) when it carries
// binary data. The number of nodes (for fetchSockets and server-side events
// with acks) is PUBSUB SHARDNUMSUB of the namespace's channel, summed over
// the shards, as Node counts it; there are no heartbeats.
//
// Guarantees. At most once, as Node's: sharded pub/sub keeps nothing. A
// broadcast is delivered to the local clients by the socketio server and
// queued for Redis without waiting (bounded; a full queue or a failed
// publication drops the remote copy, counted in Stats.Dropped and logged);
// one goroutine publishes the queue in order. While a shard is unreachable,
// its channels' messages are lost and go-redis reconnects and resubscribes
// by itself; Up is false while any node fails the health check (a PING of
// every node each Options.HealthCheck).
package shardedadapter
