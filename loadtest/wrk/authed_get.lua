-- wrk scenario: GET of one path (env PATH_TO_GET) as many signed-in users in turn
-- (env TOKENS: a file, one JWT per line), e.g. GET /users/me/orders. Each wrk thread takes
-- its own slice of the tokens; every request is built once, in init (see purchase.lua).
-- Each user also comes from its own address (X-Forwarded-For, as purchase.lua's XFF=1).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local tokens = {}
  for line in io.lines(os.getenv("TOKENS")) do
    tokens[#tokens + 1] = line
  end
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
  local head = "GET " .. (os.getenv("PATH_TO_GET") or "/") .. " HTTP/1.1\r\nHost: " .. wrk.host
    .. ":" .. wrk.port .. "\r\nAuthorization: Bearer "
  n = math.floor(#tokens / nthreads)
  local offset = n * tid
  reqs = {}
  for k = 1, n do
    local i = offset + k - 1
    reqs[k] = head .. tokens[i + 1] .. string.format("\r\nX-Forwarded-For: 10.%d.%d.%d\r\n\r\n",
      math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256)
  end
end

function request()
  counter = counter + 1
  return reqs[(counter - 1) % n + 1]
end
