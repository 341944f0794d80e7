-- wrk script for GET requests over a list of paths, in turn: home.py's shopper home screen (the three
-- calls a home screen makes, each screen as one shopper picked at random from a token file) and its ping.
-- Arguments after `--`: paths (comma-separated, e.g. /api/mp/v1/me,/api/mp/v1/me/points), then optionally
-- a token file (one bearer token a line). Every len(paths) requests a new shopper is picked.
-- done() prints one JSON line that loadgen.py parses.

local paths = {}
local tokens = {}
local headers = {}
local sent = 0
local thread_no = 0
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
end

function init(args)
  for path in string.gmatch(args[1], "[^,]+") do
    table.insert(paths, path)
  end
  if args[2] and #args[2] > 0 then
    for line in io.lines(args[2]) do
      if #line > 0 then
        table.insert(tokens, "Bearer " .. line)
      end
    end
  end
  headers["Host"] = wrk.headers["Host"]
  math.randomseed(os.time() * 100 + thread_no)
end

function request()
  local step = sent % #paths
  if step == 0 and #tokens > 0 then
    headers["Authorization"] = tokens[math.random(#tokens)]
  end
  sent = sent + 1
  return wrk.format("GET", paths[step + 1], headers)
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
