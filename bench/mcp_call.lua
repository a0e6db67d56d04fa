-- wrk script: MCP `tools/call` round trips over Streamable HTTP.
--
-- Sessions are opened beforehand (initialize + notifications/initialized) by bench/bench.py and
-- handed in through the environment; every request carries a JSON-RPC id that is unique across
-- all threads and connections of the run (servers that map responses by id, like the reference
-- TypeScript server, silently misbehave with repeated ids).
--
-- Environment:
--   MCP_SESSIONS  comma-separated Mcp-Session-Id values; requests rotate over them
--   MCP_PATH      request path (default /mcp)
--   MCP_METHOD    JSON-RPC method (default tools/call)
--   MCP_TOOL      tool name (default echo; tools/call only)
--   MCP_ARGS      JSON object of tool arguments (default {}; tools/call only)
--   MCP_AUTH      optional Authorization header value (e.g. "Bearer …")
--   MCP_DELAY_MS  optional think time between requests on a connection (paced runs)
--   MCP_OUT       file the summary is written to as one JSON object
--
-- A response counts as bad unless it is HTTP 200 with a JSON-RPC result that is not a tool error.

local threads = {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end

function init(args)
  local sessions = {}
  for sid in string.gmatch(os.getenv("MCP_SESSIONS") or "", "[^,]+") do
    table.insert(sessions, sid)
  end
  if #sessions == 0 then
    error("MCP_SESSIONS is empty")
  end
  path = os.getenv("MCP_PATH") or "/mcp"
  local tool = os.getenv("MCP_TOOL") or "echo"
  local arguments = os.getenv("MCP_ARGS") or "{}"
  delay_ms = tonumber(os.getenv("MCP_DELAY_MS") or "0") or 0
  local auth = os.getenv("MCP_AUTH")

  -- One prebuilt header table per session; wrk.format only (re)sets Host and Content-Length.
  headers = {}
  for i, sid in ipairs(sessions) do
    local h = {
      ["Content-Type"] = "application/json",
      ["Accept"] = "application/json, text/event-stream",
      ["MCP-Protocol-Version"] = "2025-11-25",
      ["Mcp-Session-Id"] = sid,
    }
    if auth and auth ~= "" then
      h["Authorization"] = auth
    end
    headers[i] = h
  end
  nsessions = #sessions

  body_head = '{"jsonrpc":"2.0","id":'
  local method = os.getenv("MCP_METHOD") or "tools/call"
  if method == "tools/call" then
    body_tail = ',"method":"tools/call","params":{"name":"' .. tool .. '","arguments":' .. arguments .. '}}'
  else
    body_tail = ',"method":"' .. method .. '","params":{}}'
  end
  -- ids: thread number * 1e9 + per-thread counter, unique across the whole run
  id_base = tid * 1000000000
  counter = 0
  bad = 0
end

function request()
  counter = counter + 1
  local h = headers[(counter + tid) % nsessions + 1]
  return wrk.format("POST", path, h, body_head .. (id_base + counter) .. body_tail)
end

if (tonumber(os.getenv("MCP_DELAY_MS") or "0") or 0) > 0 then
  function delay()
    return delay_ms
  end
end

function response(status, hdrs, body)
  if status ~= 200
    or not string.find(body, '"result"', 1, true)
    or string.find(body, '"isError":true', 1, true) then
    bad = bad + 1
    if bad <= 3 then
      io.stderr:write("bad response (status " .. status .. "): " .. string.sub(body, 1, 300) .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local total_bad = 0
  for _, t in ipairs(threads) do
    total_bad = total_bad + (t:get("bad") or 0)
  end
  local e = summary.errors
  local json = string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"bad":%d,' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout, total_bad,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9))
  local out = os.getenv("MCP_OUT")
  if out and out ~= "" then
    local f = assert(io.open(out, "w"))
    f:write(json)
    f:close()
  else
    io.write(json)
  end
end
