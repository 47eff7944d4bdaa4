-- wrk script for benchmarks/assign.py: POST /api/v1/assign bodies with a different unit id on
-- every request (thread number + counter + a random suffix) and a few attributes.
-- Arguments after `--`: <api key> [nolog]. "nolog" sends log_exposure false.
-- Prints one "WRK_JSON {...}" line with the figures.

local threads = {}
local counter = 0
local key = ""
local log_exposure = "true"
local countries = { "US", "FR", "DE", "GB", "JP" }
local plans = { "free", "pro", "team" }

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  key = args[1] or ""
  if args[2] == "nolog" then
    log_exposure = "false"
  end
  math.randomseed(os.time() + (tid or 0) * 7919)
  wrk.headers["Content-Type"] = "application/json"
  if key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
  end
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"unit_id":"u-%d-%d-%d","attributes":{"country":"%s","plan":"%s"},"log_exposure":%s}',
    tid or 0, counter, math.random(0, 999999),
    countries[math.random(#countries)], plans[math.random(#plans)], log_exposure
  )
  return wrk.format("POST", nil, nil, body)
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
