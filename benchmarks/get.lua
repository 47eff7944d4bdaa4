-- wrk script for benchmarks/assign.py: GET requests, with optional headers.
-- Arguments after `--`: [<api key> [<etag>]]. The key goes in Authorization, the ETag in
-- If-None-Match (so /api/v1/config answers 304). Prints one "WRK_JSON {...}" line.

function init(args)
  if args[1] and args[1] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[1]
  end
  if args[2] and args[2] ~= "" then
    wrk.headers["If-None-Match"] = args[2]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout
  ))
end
