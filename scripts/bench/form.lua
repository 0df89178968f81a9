-- wrk script for scripts/bench/run: POSTs the relay's form (multipart,
-- fields `category` and `text`, optionally one file in `files`), as a
-- browser would, counts response statuses, and prints one JSON line of
-- results at the end.
--
--   wrk -t T -c C -d D --latency -s form.lua URL -- MODE COUNT T DONE_FILE
--
-- MODE  small: every request carries 4 KiB of text (scenario 1, 4);
--       mixed: 2-8 KiB of text, and every 100th request also a 1-4 MiB
--              attachment (scenario 3).
-- COUNT 0 runs for the duration D; N makes each of the T threads stop after
--       ceil(N / T) responses and append a line to DONE_FILE (the runner
--       then ends wrk with SIGINT: wrk itself always waits out D).

local boundary = "----relaybench7MA4YWxkTrZu0gW"
local mode, limit, done_file = "small", 0, nil
local sent, received = 0, 0
statuses = {}

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or "small"
  local count = tonumber(args[2] or "0")
  local nthreads = tonumber(args[3] or "1")
  done_file = args[4]
  if count > 0 then
    limit = math.ceil(count / nthreads)
  end
end

local function part(name, value)
  return "--" .. boundary .. "\r\n" ..
    "Content-Disposition: form-data; name=\"" .. name .. "\"\r\n\r\n" ..
    value .. "\r\n"
end

local function body_for(i)
  local text_len = 4096
  if mode == "mixed" then
    text_len = 2048 + (i * 7919) % 6145
  end
  local letter = string.char(97 + i % 26)
  local body = part("category", "other") .. part("text", string.rep(letter, text_len))
  if mode == "mixed" and i % 100 == 0 then
    local size = 1048576 + ((i / 100) * 786433) % (3 * 1048576)
    body = body .. "--" .. boundary .. "\r\n" ..
      "Content-Disposition: form-data; name=\"files\"; filename=\"evidence.bin\"\r\n" ..
      "Content-Type: application/octet-stream\r\n\r\n" ..
      string.rep(letter, size) .. "\r\n"
  end
  return body .. "--" .. boundary .. "--\r\n"
end

local headers = { ["Content-Type"] = "multipart/form-data; boundary=" .. boundary }
local small_request = nil

function request()
  sent = sent + 1
  if mode == "small" then
    if small_request == nil then
      small_request = wrk.format("POST", nil, headers, body_for(0))
    end
    return small_request
  end
  return wrk.format("POST", nil, headers, body_for(sent))
end

function response(status, hdrs, body)
  statuses[status] = (statuses[status] or 0) + 1
  received = received + 1
  if limit > 0 and received == limit then
    if done_file then
      local f = io.open(done_file, "a")
      if f then
        f:write("done\n")
        f:close()
      end
    end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for code, n in pairs(s) do
        counts[code] = (counts[code] or 0) + n
      end
    end
  end
  local parts = {}
  for code, n in pairs(counts) do
    table.insert(parts, string.format("\"%d\":%d", code, n))
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH-JSON {\"requests\":%d,\"duration_s\":%.3f,\"rps\":%.2f," ..
    "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f," ..
    "\"errors\":{\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d}," ..
    "\"statuses\":{%s}}\n",
    summary.requests, summary.duration / 1e6,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(parts, ",")))
end
