"""The FastAPI + uvicorn peer of bench/peers.sh: the stack the seeds' measurements used (about 1,750
streams of 20 tokens/s on one core), streaming exactly the events chatstream's scripted provider
streams, so the same sseload judges both.

POST /chat/stream → text/event-stream: `retry: 3000`, then meta, generation_start, TOKENS tokens
"t0 " "t1 " … at RATE per second on an absolute schedule (token i at first + i/RATE, so a late turn
does not push every later token back), done; ids "<run_id>:<seq>"; a `: ping` comment every 15 s
of silence. Run at its best settings by bench/peers.sh: one uvicorn process on one core, uvloop,
httptools, no access log.

Environment: PEER_TOKENS (default 400), PEER_RATE (default 20)."""

import asyncio
import json
import os
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

TOKENS = int(os.environ.get("PEER_TOKENS", "400"))
RATE = float(os.environ.get("PEER_RATE", "20"))
HEARTBEAT_S = 15.0

app = FastAPI()


def frame(run_id: str, seq: int, event: str, fields: dict) -> bytes:
    data = json.dumps({"type": event, **fields}, separators=(",", ":"))
    return f"id: {run_id}:{seq}\nevent: {event}\ndata: {data}\n\n".encode()


async def answer(run_id: str, session_id: str):
    loop = asyncio.get_running_loop()
    yield b"retry: 3000\n\n"
    yield frame(run_id, 0, "meta", {"run_id": run_id, "session_id": session_id, "heartbeat_ms": 15000})
    yield frame(run_id, 1, "generation_start", {"provider": "scripted", "context_messages": 0})
    first = loop.time()
    last_write = first
    for i in range(TOKENS):
        due = first + i / RATE if RATE > 0 else 0
        while True:
            wait = due - loop.time()
            if wait <= 0:
                break
            if loop.time() - last_write + wait > HEARTBEAT_S:
                await asyncio.sleep(HEARTBEAT_S - (loop.time() - last_write))
                yield b": ping\n\n"
                last_write = loop.time()
                continue
            await asyncio.sleep(wait)
        yield frame(run_id, 2 + i, "token", {"content": f"t{i} "})
        last_write = loop.time()
    duration_ms = (loop.time() - first) * 1000
    yield frame(run_id, 2 + TOKENS, "done", {"status": "complete", "tokens": TOKENS, "duration_ms": round(duration_ms, 3)})


@app.post("/chat/stream")
async def chat_stream(request: Request):
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": {"code": "invalid_json", "message": "the body is not JSON"}}, status_code=400)
    if not isinstance(body, dict) or not isinstance(body.get("message"), str) or not body["message"]:
        return JSONResponse({"error": {"code": "invalid_request", "message": "message is required"}}, status_code=400)
    run_id, session_id = str(uuid.uuid4()), str(uuid.uuid4())
    headers = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}
    return StreamingResponse(answer(run_id, session_id), media_type="text/event-stream; charset=utf-8",
                             headers=headers)


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}
