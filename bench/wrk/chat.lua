-- POST /chat: the whole answer as one JSON object (no streaming), over keep-alive connections.
--   wrk -t1 -c50 -d10s -s bench/wrk/chat.lua http://127.0.0.1:9000
-- The body can be changed with CHAT_BODY='{"message":"..."}' in the environment.
wrk.method = "POST"
wrk.path = "/chat"
wrk.body = os.getenv("CHAT_BODY") or '{"message":"hello"}'
wrk.headers["Content-Type"] = "application/json"

-- summary.lua sits next to this script, wherever wrk is started from.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "summary.lua")
