// The tutorial's index.js (express 5 + socket.io 4.8) as a node of a cluster
// on @socket.io/redis-streams-adapter 0.3.1 with its defaults: the Node.js
// pair of the benchmark's cluster scenario (bench/driver/cluster.go). The
// same chat handler as index.js; the only additions are the adapter and the
// knobs:
//   PORT=n, HOST=addr, --quiet   as index.js;
//   REDIS_URL=redis://…          the Redis both nodes share (required);
//   REDIS_PREFIX=name            the adapter's streamName and channelPrefix
//                                (default socket.io, as the adapter).
// Run it from the repository root:
//   REDIS_URL=redis://127.0.0.1:6379/12 PORT=9001 node bench/node-tutorial/streams.js --quiet
const http = require('http')
const express = require('express');

const path = require('path')
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-streams-adapter");

const quiet = process.argv.includes('--quiet') || process.env.QUIET === '1';
const PORT = Number(process.env.PORT || 9000);
const prefix = process.env.REDIS_PREFIX || "socket.io";

async function main() {
    const redisClient = createClient({ url: process.env.REDIS_URL });
    redisClient.on("error", (err) => console.error(`redis error: ${err.message}`));
    await redisClient.connect();

    const app = express();
    const server = http.createServer(app);
    const io = new Server(server, {
        adapter: createAdapter(redisClient, { streamName: prefix, channelPrefix: prefix }),
    });

    io.on('connection', (socket) => {
        if (!quiet) console.log("A new user has connected", socket.id)
        socket.on('user-message', message => {
            io.emit('message', message)
        })
    })

    app.use(express.static(path.resolve('./public')));

    app.get('/', (req, res) => {
        return (res.sendFile('/public/index.html'))
    })

    server.listen(PORT, process.env.HOST || undefined, () => {
        console.log(`Server started at port:${PORT} (redis streams adapter, stream ${prefix})`);
    })

    // Stop cleanly on SIGTERM/SIGINT (the driver stops each server when its scenario ends).
    for (const sig of ['SIGTERM', 'SIGINT']) {
        process.on(sig, () => {
            io.close();
            server.close(() => process.exit(0));
            setTimeout(() => process.exit(0), 2000).unref();
        });
    }
}

if (!process.env.REDIS_URL) {
    console.error("streams.js: set REDIS_URL");
    process.exit(2);
}
main().catch((err) => {
    console.error(err);
    process.exit(1);
});
