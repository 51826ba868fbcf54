// The Socket.IO chat tutorial's index.js (express 5 + socket.io 4.8), used as
// the Node.js peer of the benchmark (bench/driver). It is the tutorial's code
// with four benchmark knobs and nothing else:
//   PORT=n      listen port (the tutorial hard-codes 9000, still the default);
//   HOST=addr   listen address (the driver passes 127.0.0.1; unset = all, as in the tutorial);
//   --quiet     do not log each connection, so logging does not dominate the
//               measurement (the Go server runs with -log-level warn likewise);
//   NAMESPACES=/n0,/n1,...  more chat namespaces, each with the tutorial's
//               handler on io.of(name) (the Go server's -namespaces; the
//               benchmark's namespaces scenario).
// Run it from the repository root (the tutorial resolves ./public from the cwd):
//   node bench/node-tutorial/index.js --quiet
const http = require('http')
const express = require('express');

const path = require('path')
const { Server } = require("socket.io");

const quiet = process.argv.includes('--quiet') || process.env.QUIET === '1';
const PORT = Number(process.env.PORT || 9000);

const app = express();
const server = http.createServer(app);
const io = new Server(server);

io.on('connection', (socket) => {
    if (!quiet) console.log("A new user has connected", socket.id)
    socket.on('user-message', message => {
        io.emit('message', message)
    })
})

for (const name of (process.env.NAMESPACES || '').split(',').filter(Boolean)) {
    const nsp = io.of(name)
    nsp.on('connection', (socket) => {
        if (!quiet) console.log("A new user has connected", name, socket.id)
        socket.on('user-message', message => {
            nsp.emit('message', message)
        })
    })
}

app.use(express.static(path.resolve('./public')));

app.get('/', (req, res) => {
    return (res.sendFile('/public/index.html'))
})

server.listen(PORT, process.env.HOST || undefined, () => {
    console.log(`Server started at port:${PORT}`);
})

// Stop cleanly on SIGTERM/SIGINT (the driver stops each server when its scenario ends).
for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
        io.close();
        server.close(() => process.exit(0));
        setTimeout(() => process.exit(0), 2000).unref();
    });
}
