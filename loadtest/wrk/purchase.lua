-- wrk scenario: POST /flash-sales/{SALE}/purchase, a different buyer (token) per request.
-- env: TOKENS (file, one JWT per line), SALE (sale id), QTY (default 1), XFF ("1": each
-- buyer also comes from its own client address, given in X-Forwarded-For as a trusted
-- load balancer would; the edge's per-IP buckets then apply per buyer)
-- Each wrk thread takes its own slice of the token list, and every request carries its own
-- Idempotency-Key. Every request is built once, in init (before wrk starts its clock): the
-- load generator shares the server's cores, and formatting a request per call in Lua cost
-- wrk ~50 µs of CPU each (it capped this scenario at ~20k requests/s against the bare
-- endpoint, which it reached at ~35k once prebuilt).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

-- the buyer's address: 10.0.0.0/8 holds 16M distinct ones
local function address(i)
  return string.format("10.%d.%d.%d", math.floor(i / 65536) % 256, math.floor(i / 256) % 256,
                       i % 256)
end

function init(args)
  local tokens = {}
  for line in io.lines(os.getenv("TOKENS")) do
    tokens[#tokens + 1] = line
  end
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
  local path = "/flash-sales/" .. os.getenv("SALE") .. "/purchase"
  local body = '{"quantity": ' .. (os.getenv("QTY") or "1") .. '}'
  local xff = os.getenv("XFF") == "1"
  local head = "POST " .. path .. " HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port
    .. "\r\nContent-Type: application/json\r\nContent-Length: " .. #body
    .. "\r\nAuthorization: Bearer "
  n = math.floor(#tokens / nthreads)
  local offset = n * tid
  reqs = {}
  for k = 1, n do
    local i = offset + k - 1
    local from = xff and ("\r\nX-Forwarded-For: " .. address(i)) or ""
    reqs[k] = head .. tokens[i + 1] .. from .. "\r\nIdempotency-Key: " .. tid .. "-" .. k
      .. "\r\n\r\n" .. body
  end
end

function request()
  counter = counter + 1
  return reqs[(counter - 1) % n + 1]
end
