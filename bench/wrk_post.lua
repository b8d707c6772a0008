-- wrk script for the benchmark: POST a JSON body and print exact results for bench/load.py.
-- The body comes from the BENCH_BODY environment variable (bench/load.py sets it).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("BENCH_AUTH") then
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_AUTH")
end
wrk.body = os.getenv("BENCH_BODY") or '{"model": "bench", "messages": [{"role": "user", "content": "Say hello"}]}'

-- BENCH_UNIQUE: every request asks a different question (a response cache then always misses).
-- Unique across runs too: a run's questions start from the clock and a random number.
if os.getenv("BENCH_UNIQUE") then
  math.randomseed(os.time())
  local run = os.time() .. "-" .. math.random(1, 1000000000)
  local count = 0
  function request()
    count = count + 1
    local tag = run .. "-" .. count .. " "
    local body = string.gsub(wrk.body, '"content": "', '"content": "' .. tag, 1)
    return wrk.format(nil, nil, nil, body)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_status": %d, ' ..
    '"errors_timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.2f, ' ..
    '"max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
