-- wrk script for POST /api/staff/v1/purchases: a unique receipt per request, a random member and store.
-- Arguments after `--`: token, receipt prefix, first member id, last member id, store ids (comma-separated),
-- lowest amount (fen), highest amount (fen). done() prints one JSON line that earn.py parses.

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
  table.insert(threads, thread)
end

local prefix, first_member, last_member, stores, low_fen, high_fen
local sent = 0

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  prefix = args[2] .. "-" .. thread_no .. "-"
  first_member = tonumber(args[3])
  last_member = tonumber(args[4])
  stores = {}
  for id in string.gmatch(args[5], "%d+") do
    table.insert(stores, tonumber(id))
  end
  low_fen = tonumber(args[6])
  high_fen = tonumber(args[7])
  math.randomseed(os.time() * 100 + thread_no)
end

function request()
  sent = sent + 1
  local body = string.format(
    '{"member_id": %d, "store_id": %d, "receipt_no": "%s%d", "amount_fen": %d}',
    math.random(first_member, last_member),
    stores[math.random(#stores)],
    prefix,
    sent,
    math.random(low_fen, high_fen)
  )
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
      .. '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_status": %d, '
      .. '"errors_timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout
  ))
end
