-- GET /healthz: the cheapest request chatstream answers; a ceiling for plain HTTP throughput.
--   wrk -t1 -c50 -d10s -s bench/wrk/healthz.lua http://127.0.0.1:9000
-- (The same without the JSON summary: wrk -t1 -c50 -d10s http://127.0.0.1:9000/healthz)
wrk.method = "GET"
wrk.path = "/healthz"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "summary.lua")
