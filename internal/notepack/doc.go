// Package notepack reads and writes msgpack as Node's notepack.io does, and
// transcodes between it and the JSON text of Socket.IO arguments
// (socketio.Arg): msgpack → JSON as JSON.stringify writes what notepack.io
// decodes, JSON → msgpack as notepack.io encodes what JSON.parse reads.
// socketio's msgpack parser (socket.io-msgpack-parser) and the Redis
// adapter (@socket.io/redis-adapter) share it.
//
// A Decoder or an Encoder belongs to one goroutine at a time.
package notepack
