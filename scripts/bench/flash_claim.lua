-- wrk script for POST /api/mp/v1/coupon-templates/{id}/claims: exactly N requests in all, each with a unique
-- Idempotency-Key and the bearer token of a shopper picked at random from a file (one token a line).
-- Arguments after `--`: token file, key prefix, number of requests. Run it with one wrk thread.
--
-- wrk itself only knows durations, so the count is kept here: once N requests are sent, request() returns
-- an empty string (the connection writes nothing and waits), and when the N-th response is in, the
-- thread prints FLASH_DONE with the outcomes and stops its loop. flash_claim.py then interrupts wrk's
-- (long) duration with SIGINT, and done() prints the latency figures of those N responses.

local tokens = {}
local headers = {}
local prefix
local total
local sent = 0
-- wrk calls request() once on the first thread before connecting, to check the request it builds
-- (script_verify_request); that call sends nothing, so it must not count.
local verified = false
local received = 0
local outcomes = { issued = 0, retried = 0, sold_out = 0, limit = 0, other_409 = 0, other = 0 }
local other_statuses = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      table.insert(tokens, "Bearer " .. line)
    end
  end
  prefix = args[2]
  total = tonumber(args[3])
  wrk.method = "POST"
  headers["Host"] = wrk.headers["Host"]
  math.randomseed(os.time())
end

function request()
  if not verified then
    verified = true
    return wrk.format("POST", nil, headers, "")
  end
  if sent >= total then
    return ""
  end
  sent = sent + 1
  headers["Authorization"] = tokens[math.random(#tokens)]
  headers["Idempotency-Key"] = string.format("%s-%08d", prefix, sent)
  return wrk.format("POST", nil, headers, "")
end

function response(status, response_headers, body)
  received = received + 1
  if status == 201 then
    outcomes.issued = outcomes.issued + 1
  elseif status == 200 then
    outcomes.retried = outcomes.retried + 1
  elseif status == 409 and string.find(body, "COUPON_SOLD_OUT", 1, true) then
    outcomes.sold_out = outcomes.sold_out + 1
  elseif status == 409 and string.find(body, "COUPON_LIMIT_REACHED", 1, true) then
    outcomes.limit = outcomes.limit + 1
  else
    outcomes.other = outcomes.other + 1
    other_statuses[status] = (other_statuses[status] or 0) + 1
  end
  if received == total then
    local statuses = {}
    for code, count in pairs(other_statuses) do
      table.insert(statuses, string.format('"%d": %d', code, count))
    end
    io.write(string.format(
      'FLASH_DONE {"received": %d, "issued": %d, "retried": %d, "sold_out": %d, "limit": %d, "other": %d, '
        .. '"other_statuses": {%s}}\n',
      received, outcomes.issued, outcomes.retried, outcomes.sold_out, outcomes.limit, outcomes.other,
      table.concat(statuses, ", ")
    ))
    io.stdout:flush()
    wrk.thread:stop()
  end
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
