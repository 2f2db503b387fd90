-- wrk scenario: POST /flash-sales/{SALE}/purchase, a different buyer (token) per request.
-- env: TOKENS (file, one JWT per line), SALE (sale id), QTY (default 1), XFF ("1": each
-- buyer also comes from its own client address, given in X-Forwarded-For as a trusted
-- load balancer would; the edge's per-IP buckets then apply per buyer)
-- Each wrk thread starts at its own offset in the token list, and every request carries
-- a fresh Idempotency-Key.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(os.getenv("TOKENS")) do
    tokens[#tokens + 1] = line
  end
  nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
  offset = math.floor(#tokens / nthreads) * tid
  path = "/flash-sales/" .. os.getenv("SALE") .. "/purchase"
  body = '{"quantity": ' .. (os.getenv("QTY") or "1") .. '}'
  xff = os.getenv("XFF") == "1"
end

-- the buyer's address: 10.0.0.0/8 holds 16M distinct ones
local function address(i)
  return string.format("10.%d.%d.%d", math.floor(i / 65536) % 256, math.floor(i / 256) % 256,
                       i % 256)
end

function request()
  counter = counter + 1
  local i = (offset + counter - 1) % #tokens
  local headers = {
    ["Authorization"] = "Bearer " .. tokens[i + 1],
    ["Idempotency-Key"] = tid .. "-" .. counter,
    ["Content-Type"] = "application/json",
  }
  if xff then headers["X-Forwarded-For"] = address(i) end
  return wrk.format("POST", path, headers, body)
end
