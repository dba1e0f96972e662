// The Node `http` peer of bench/peers.sh: node's own HTTP server, no framework, streaming exactly
// the events chatstream's scripted provider streams, so the same sseload judges both.
//
// POST /chat/stream → text/event-stream: `retry: 3000`, then meta, generation_start, TOKENS tokens
// "t0 " "t1 " … at RATE per second on an absolute schedule (token i at first + i/RATE), done; ids
// "<run_id>:<seq>"; a `: ping` comment every 15 s of silence. One timer per stream at a time; the
// stream stops when the client goes away. Best settings (bench/peers.sh): one process on one core,
// Nagle off, no request timeout.
//
//   node bench/peers/node_server.mjs --port PORT   (environment: PEER_TOKENS, PEER_RATE)
import http from "node:http";
import { randomUUID } from "node:crypto";

const TOKENS = Number(process.env.PEER_TOKENS ?? 400);
const RATE = Number(process.env.PEER_RATE ?? 20);
const HEARTBEAT_MS = 15000;
const portIndex = process.argv.indexOf("--port");
const port = portIndex > 0 ? Number(process.argv[portIndex + 1]) : 9300;

function frame(runId, seq, type, fields) {
  return `id: ${runId}:${seq}\nevent: ${type}\ndata: ${JSON.stringify({ type, ...fields })}\n\n`;
}

function answer(req, res) {
  const runId = randomUUID();
  const sessionId = randomUUID();
  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
  });
  res.write("retry: 3000\n\n" + frame(runId, 0, "meta", { run_id: runId, session_id: sessionId, heartbeat_ms: 15000 }) +
            frame(runId, 1, "generation_start", { provider: "scripted", context_messages: 0 }));
  const first = performance.now();
  let lastWrite = first;
  let i = 0;
  let timer = null;
  const step = () => {
    const now = performance.now();
    const due = RATE > 0 ? first + (i * 1000) / RATE : now;
    if (due > now) {
      if (now - lastWrite + (due - now) > HEARTBEAT_MS) {
        timer = setTimeout(() => { res.write(": ping\n\n"); lastWrite = performance.now(); step(); },
                           HEARTBEAT_MS - (now - lastWrite));
      } else {
        timer = setTimeout(step, due - now);
      }
      return;
    }
    if (i < TOKENS) {
      res.write(frame(runId, 2 + i, "token", { content: `t${i} ` }));
      lastWrite = now;
      i += 1;
      step();
      return;
    }
    res.end(frame(runId, 2 + TOKENS, "done",
                  { status: "complete", tokens: TOKENS, duration_ms: Math.round((now - first) * 1000) / 1000 }));
  };
  res.on("close", () => clearTimeout(timer));
  step();
}

function reject(res, status, code, message) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ error: { code, message } }));
}

const server = http.createServer({ noDelay: true, requestTimeout: 0, keepAliveTimeout: 5000 }, (req, res) => {
  if (req.method === "GET" && req.url === "/healthz") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end('{"status":"ok"}');
    return;
  }
  if (req.method !== "POST" || req.url !== "/chat/stream") return reject(res, 404, "not_found", "no such route");
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (chunk) => {
    body += chunk;
    if (body.length > 65536) req.destroy();
  });
  req.on("end", () => {
    let parsed;
    try {
      parsed = JSON.parse(body);
    } catch {
      return reject(res, 400, "invalid_json", "the body is not JSON");
    }
    if (typeof parsed?.message !== "string" || parsed.message === "") {
      return reject(res, 400, "invalid_request", "message is required");
    }
    answer(req, res);
  });
});
server.maxConnections = 20000;
server.listen(port, "127.0.0.1", 65535, () => console.log(`listening on 127.0.0.1:${port}`));
