-- wrk scenario: POST /auth/refresh in chains. env: TOKENS (file, one refresh token per line).
-- Each answer's new refresh token goes back into the pool and the next request takes one
-- from it, so every token is presented exactly once (a token presented twice would revoke
-- its session). wrk may ask for a connection's next request before the answer that refills
-- the pool was handled, so give it several tokens per connection (loadtest/accounts.py uses
-- 4): a request made with the pool dry is sent with an invalid token, answered 401, and
-- counted in the summary line. One wrk thread (-t1): the pool is per thread.
local pool = {}
local threads = {}
refused, dry = 0, 0  -- globals: done() reads them through thread:get

function init(args)
  for line in io.lines(os.getenv("TOKENS")) do
    pool[#pool + 1] = line
  end
end

local function build(token)
  local body = '{"refresh_token":"' .. token .. '"}'
  return "POST /auth/refresh HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port
    .. "\r\nContent-Type: application/json\r\nIdempotency-Key: r\r\nContent-Length: "
    .. #body .. "\r\n\r\n" .. body
end

function request()
  local token = table.remove(pool)
  if token == nil then
    dry = dry + 1
    -- nothing to refresh: a request that fails fast (counted as non-2xx)
    return build("rt1.0.0.0")
  end
  return build(token)
end

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status == 200 then
    local token = string.match(body, '"refresh_token":"([^"]+)"')
    if token then pool[#pool + 1] = token end
  else
    refused = refused + 1
  end
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("refresh: %d refused, %d sent with the pool dry\n", t:get("refused"),
                           t:get("dry")))
  end
end
