-- wrk scenario: POST /flash-sales/{SALE}/purchase, a different buyer (token) per request.
-- env: TOKENS (file, one JWT per line), SALE (sale id), QTY (default 1), XFF ("1": each
-- buyer also comes from its own client address, given in X-Forwarded-For as a trusted
-- load balancer would; the edge's per-IP buckets then apply per buyer)
-- Each wrk thread takes its own slice of the token list (buyers.lua), and every request
-- carries its own Idempotency-Key. Every request is built once, in init (before wrk starts
-- its clock): the load generator shares the server's cores, and formatting a request per
-- call in Lua cost wrk ~50 µs of CPU each (it capped this scenario at ~20k requests/s
-- against the bare endpoint, which it reached at ~35k once prebuilt).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
dofile(dir .. "buyers.lua")

function init(args)
  local tokens, offset = token_slice()
  local path = "/flash-sales/" .. os.getenv("SALE") .. "/purchase"
  local body = '{"quantity": ' .. (os.getenv("QTY") or "1") .. '}'
  local xff = os.getenv("XFF") == "1"
  local head = "POST " .. path .. " HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port
    .. "\r\nContent-Type: application/json\r\nContent-Length: " .. #body
    .. "\r\nAuthorization: Bearer "
  reqs = {}
  for k = 1, #tokens do
    local from = xff and ("\r\nX-Forwarded-For: " .. address(offset + k - 1)) or ""
    reqs[k] = head .. tokens[k] .. from .. "\r\nIdempotency-Key: " .. tid .. "-" .. k
      .. "\r\n\r\n" .. body
  end
end
