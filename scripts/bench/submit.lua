-- wrk script: POST the form with 4 KiB of testimony text, as a browser would.
-- Usage: wrk -t2 -c16 -d20s -s scripts/bench/submit.lua https://127.0.0.1:8443/en/submit
local boundary = "----relaybench7MA4YWxkTrZu0gW"
local text = string.rep("x", 4096)
local body = "--" .. boundary .. "\r\n" ..
  "Content-Disposition: form-data; name=\"category\"\r\n\r\nother\r\n" ..
  "--" .. boundary .. "\r\n" ..
  "Content-Disposition: form-data; name=\"text\"\r\n\r\n" .. text .. "\r\n" ..
  "--" .. boundary .. "--\r\n"

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary

done = function(summary, latency, requests)
  io.write(string.format("latency p50 %.1f ms, p99 %.1f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
