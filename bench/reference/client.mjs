// Uploads realistic class documents to a running server.mjs and measures what they cost the
// *server* process: CPU time (utime+stime from /proc/PID/stat) and resident memory (VmRSS from
// /proc/PID/status), sampled after a warm-up and again after every document is confirmed.
//
// Usage: node client.mjs PORT SERVER_PID [N]      (or env PORT, SERVER_PID, N; N defaults to 1000)
// Env: WARMUP (default 20), BATCH (default 50: documents in flight at once).
// Prints one JSON line; exits non-zero on any failure.

import { execFileSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import fs from "node:fs"
import { performance } from "node:perf_hooks"
import * as A from "@automerge/automerge"
import { Repo } from "@automerge/automerge-repo"
// In Node the client adapter takes its WebSocket from `isomorphic-ws`, i.e. the `ws` package, so
// Node 20's missing global WebSocket does not matter.
import { BrowserWebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

const port = Number(process.argv[2] ?? process.env.PORT)
const pid = Number(process.argv[3] ?? process.env.SERVER_PID)
const N = Number(process.argv[4] ?? process.env.N ?? 1000)
const WARMUP = Number(process.env.WARMUP ?? 20)
const BATCH = Number(process.env.BATCH ?? 50)
const CONFIRM_TIMEOUT_MS = 120_000
if (![port, pid, N, WARMUP, BATCH].every(Number.isInteger) || port <= 0 || N <= 0 || BATCH <= 0) {
  console.error("usage: node client.mjs PORT SERVER_PID [N]")
  process.exit(2)
}

// --- the server process, seen from outside ---------------------------------------------------

const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim())

function cpuTicks() {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  // Fields after the ")" closing the command name: state is field 3, utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return Number(f[11]) + Number(f[12])
}

function rssKib() {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
  if (!m) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1])
}

const sleep = ms => new Promise(r => setTimeout(r, ms))

// Waits until the server is idle (at most one clock tick of CPU in 500 ms), so that work it defers
// past the sync reply (the debounced storage writes) is counted, then samples it.
async function settledSample() {
  const deadline = Date.now() + 30_000
  for (;;) {
    const start = cpuTicks()
    await sleep(500)
    if (cpuTicks() - start <= 1 || Date.now() > deadline) break
  }
  return { ticks: cpuTicks(), rss: rssKib() }
}

// --- a realistic class document ------------------------------------------------------------------

// Our Rust documents hold plain scalar strings; in automerge 3 JS a bare string becomes
// collaborative text (one op per character), so scalar strings are wrapped.
const S = s => new A.ImmutableString(s)
const DAY0 = Date.parse("2026-03-02T08:00:00+08:00")

// Built the way a phone builds it: the class in one change, then 50 enrolments and 50 sign-ins as
// 100 separate changes (design.md: "50 trainees and 50 sign-ins, built in 100 commits"). All of it
// happens synchronously, so it reaches the server as one offline-built document.
function createClass(repo) {
  const device = randomUUID()
  const handle = repo.create({
    kind: S("class"),
    schema: new A.Uint(1),
    id: S(randomUUID()),
    district: S("450802"),
    village: S("450802101201"),
    created_at: new Date(DAY0 - 7 * 86_400_000),
    created_by: S(device),
    info: {
      title: S("2026年第一期中式烹调师（初级）就业技能培训班"),
      occupation: S("中式烹调师"),
      level: S("junior"),
      training_type: S("employment_skills"),
      subsidised: true,
      institution: S("贵港市港北区职业技能培训学校"),
      instructors: { 陈师傅: true },
      first_day: S("2026-03-02"),
      last_day: S("2026-03-06"),
      daily_hours: new A.Float64(6),
      sign_out_required: true,
      planned_size: new A.Uint(50),
    },
    status: S("running"),
    roster: {},
    attendance: {},
    completion: {},
  })
  const trainees = Array.from({ length: 50 }, () => randomUUID())
  trainees.forEach((t, i) => {
    handle.change(d => {
      d.roster[t] = { enrolled_at: new Date(DAY0 - 86_400_000 + i * 60_000), by: S(device) }
    })
  })
  trainees.forEach((t, i) => {
    handle.change(d => {
      d.attendance[randomUUID()] = {
        trainee: S(t),
        day: S("2026-03-02"),
        kind: S("in"),
        at: new Date(DAY0 + i * 20_000),
        device: S(device),
        method: S("hand"),
        reason: S("签到表"),
      }
    })
  })
  return handle
}

// --- "the server has it" ---------------------------------------------------------------------------

// The server replies to our sync messages with its own heads. The client Repo records them, per
// peer storage id, as the handle's sync info (`handle.getSyncInfo(storageId).lastHeads`, updated
// from the sync state's `theirHeads`, with a "remote-heads" event). Once those equal our heads the
// server has received and applied every change of the document. Its storage write is debounced
// and may come a little later; `settledSample` waits for it before the final sample.
const sameHeads = (a, b) => a.length === b.length && [...a].sort().join() === [...b].sort().join()

function serverHas(handle, storageId) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const info = handle.getSyncInfo(storageId)
      if (!info || !sameHeads(info.lastHeads, handle.heads())) return
      clearTimeout(timer)
      handle.off("remote-heads", check)
      resolve()
    }
    const timer = setTimeout(() => {
      handle.off("remote-heads", check)
      reject(new Error(`server did not confirm ${handle.documentId} in ${CONFIRM_TIMEOUT_MS} ms`))
    }, CONFIRM_TIMEOUT_MS)
    handle.on("remote-heads", check)
    check()
  })
}

async function upload(repo, storageId, count) {
  const handles = []
  for (let i = 0; i < count; i++) handles.push(createClass(repo))
  await Promise.all(handles.map(h => serverHas(h, storageId)))
  return handles
}

// --- main --------------------------------------------------------------------------------------------

const repo = new Repo({ network: [new BrowserWebSocketClientAdapter(`ws://127.0.0.1:${port}`)] })

async function serverStorageId() {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    for (const peer of repo.peers) {
      const id = repo.getStorageIdOfPeer(peer)
      if (id) return id
    }
    await sleep(20)
  }
  throw new Error(`no server peer with a storage id at ws://127.0.0.1:${port}`)
}

const storageId = await serverStorageId()
const [sample] = await upload(repo, storageId, WARMUP || 1)
const before = await settledSample()

const t0 = performance.now()
for (let done = 0; done < N; ) {
  await upload(repo, storageId, Math.min(BATCH, N - done))
  done += Math.min(BATCH, N - done)
  // TRACE=1: the server's running totals after each batch, on stderr (not settled, so approximate).
  if (process.env.TRACE) {
    const cpu = ((cpuTicks() - before.ticks) * 1000) / CLK_TCK
    console.error(JSON.stringify({ docs: done, server_cpu_ms: cpu, server_rss_kib: rssKib() }))
  }
}
const wallMs = performance.now() - t0
const after = await settledSample()

const cpuMs = ((after.ticks - before.ticks) * 1000) / CLK_TCK
const round = (x, d = 3) => Number(x.toFixed(d))
console.log(
  JSON.stringify({
    docs: N,
    server_cpu_ms_total: round(cpuMs, 1),
    server_cpu_ms_per_doc: round(cpuMs / N),
    server_rss_kib_before: before.rss,
    server_rss_kib_after: after.rss,
    server_rss_growth_kib_per_doc: round((after.rss - before.rss) / N),
    wall_ms: Math.round(wallMs),
    // What one uploaded document is, to check the other side uploads the same thing.
    doc_changes: sample.metrics().numChanges,
    doc_save_bytes: A.save(sample.doc()).length,
  }),
)
await repo.shutdown()
process.exit(0)
