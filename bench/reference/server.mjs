// The reference sync server: what the official automerge-repo-sync-server does, built from the
// current automerge-repo packages (the published sync-server package pins an old automerge-repo).
// An http server whose upgrades go to a WebSocketServer, a Repo with the websocket server adapter,
// filesystem storage, and `sharePolicy: async () => false` (it never announces documents; it
// stores and syncs whatever clients send or ask for by id).
//
// Usage: node server.mjs [DATA_DIR] [PORT]     (or env DATA_DIR, PORT; PORT 0 picks a free port)
// Prints one JSON line when listening: {"ready":true,"port":N,"pid":P}. Exits 0 on SIGTERM/SIGINT
// after flushing storage.

import fs from "node:fs"
import http from "node:http"
import os from "node:os"
import { WebSocketServer } from "ws"
import { Repo } from "@automerge/automerge-repo"
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const dir = process.argv[2] ?? process.env.DATA_DIR
const port = Number(process.argv[3] ?? process.env.PORT ?? 3030)
if (!dir || !Number.isInteger(port) || port < 0) {
  console.error("usage: node server.mjs DATA_DIR [PORT]")
  process.exit(2)
}
fs.mkdirSync(dir, { recursive: true })

const wss = new WebSocketServer({ noServer: true })
const repo = new Repo({
  network: [new NodeWSServerAdapter(wss)],
  storage: new NodeFSStorageAdapter(dir),
  peerId: `storage-server-${os.hostname()}`,
  sharePolicy: async () => false,
})

const server = http.createServer((_req, res) => {
  res.end("reference automerge-repo sync server is running\n")
})
server.on("upgrade", (request, socket, head) => {
  wss.handleUpgrade(request, socket, head, ws => wss.emit("connection", ws, request))
})
server.listen(port, "127.0.0.1", () => {
  const { port } = server.address()
  process.stdout.write(JSON.stringify({ ready: true, port, pid: process.pid }) + "\n")
})

let stopping = false
async function stop() {
  if (stopping) return
  stopping = true
  // Never hang on the way out: a harness waits for this process.
  setTimeout(() => process.exit(1), 10_000).unref()
  for (const ws of wss.clients) ws.terminate()
  wss.close()
  server.close()
  await repo.shutdown() // disconnects the adapter and flushes pending saves
  process.exit(0)
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
