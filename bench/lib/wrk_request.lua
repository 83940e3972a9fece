-- wrk script of the blobd benchmarks: one request repeated, set up from
-- the environment, and a summary printed as one JSON line that
-- benchlib.run_wrk() reads.
--
--   BENCH_METHOD  GET (default) or POST
--   BENCH_TOKEN   session token sent as "Authorization: Bearer ..."
--   BENCH_BODY    request body, sent as application/json

wrk.method = os.getenv("BENCH_METHOD") or "GET"

local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
end

local body = os.getenv("BENCH_BODY")
if body then
    wrk.body = body
    wrk.headers["Content-Type"] = "application/json"
end

-- wrk calls done() once, after all threads stop. Latencies are in
-- microseconds, and summary.errors.status counts responses outside 2xx/3xx.
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
        '"non_2xx": %d, "socket_errors": %d, "timeouts": %d, ' ..
        '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, ' ..
        '"p999_ms": %.3f, "max_ms": %.3f}\n',
        summary.requests, summary.duration, summary.bytes,
        e.status, e.connect + e.read + e.write, e.timeout,
        latency:percentile(50) / 1000, latency:percentile(90) / 1000,
        latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
        latency.max / 1000))
end
