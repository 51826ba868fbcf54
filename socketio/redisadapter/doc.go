// Package redisadapter is a socketio.Adapter that joins the servers of a
// cluster through Redis pub/sub, speaking the wire format of Node's
// @socket.io/redis-adapter 8.x (checked against 8.3.0), so that Go and
// Node.js nodes can serve the same clients side by side:
//
//	cluster, err := redisadapter.New(redisadapter.Options{URL: "redis://127.0.0.1:6379/0"})
//	...
//	srv, err := socketio.NewServer(socketio.Options{Adapter: cluster})
//
// Every operation of a Socket.IO server reaches the other nodes: broadcasts
// (rooms, exceptions, volatile), broadcasts with acknowledgements,
// socketsJoin, socketsLeave, disconnectSockets, fetchSockets and
// server-side events with acknowledgements; and the node answers the same
// requests of the other nodes, Go or Node.js.
//
// Guarantees. Delivery across nodes is at most once: Redis pub/sub keeps
// nothing, so a node that is not subscribed when a message is published
// (Redis down, node restarting) never gets it. The socketio server delivers
// a broadcast to its own clients itself; the adapter only queues it, without
// waiting and without encoding, in a bounded queue (Options.PublishQueue;
// when it is full the remote copy is dropped and counted), and one goroutine
// encodes what is queued, once per broadcast, and publishes it in
// pipelines. So Redis never blocks or loses the local delivery, and the
// messages of one node reach every other node in the order the node
// delivered them. While Redis is unreachable, broadcasts reach the local
// clients only; the outage is logged once, its end once, and the
// subscriptions come back by themselves.
//
// Arguments. Event arguments travel as msgpack, as Node publishes them
// (notepack.io): a Go node writes, from the client's JSON text, exactly what
// a Node node writes for the value JSON.parse makes of it, and delivers the
// msgpack of any node as a Node node delivers it (JSON.stringify's text,
// Buffers as binary attachments). JSON that a client wrote as
// JSON.stringify writes it goes from Go node to Go node byte for byte,
// lone surrogates included (encode.go and decode.go give the details, and
// the few values a Go node keeps where Node garbles or drops them).
//
// Metrics: Cluster.Stats counts publications, receptions, drops and
// reconnections; Cluster.Up tells whether the node hears the cluster.
package redisadapter
