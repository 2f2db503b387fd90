-- wrk scenario: POST /flash-sales/{SALE}/purchase, a different buyer (token) per request.
-- env: TOKENS (file, one JWT per line), SALE (sale id), QTY (default 1)
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
end

function request()
  counter = counter + 1
  local token = tokens[(offset + counter - 1) % #tokens + 1]
  return wrk.format("POST", path, {
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = tid .. "-" .. counter,
    ["Content-Type"] = "application/json",
  }, body)
end
