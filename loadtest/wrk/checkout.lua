-- wrk scenario: a list of requests of signed-in buyers, sent in turn (loadtest/checkout.py).
-- env: REQS (file, one request per line: method TAB path TAB token TAB JSON body; token
-- "-": an anonymous request, such as the warm-up's page views).
-- Each wrk thread takes its own slice of the lines (WRK_THREADS threads), and every request
-- carries its own Idempotency-Key. Every request is built once, in init (before wrk starts
-- its clock): the load generator shares the server's cores.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
dofile(dir .. "buyers.lua")

function init(args)
  local lines = {}
  for line in io.lines(os.getenv("REQS")) do
    lines[#lines + 1] = line
  end
  local n = math.floor(#lines / tonumber(os.getenv("WRK_THREADS") or "1"))
  local offset = n * tid
  local host = "\r\nHost: " .. wrk.host .. ":" .. wrk.port
  reqs = {}
  for k = 1, n do
    local method, path, token, body = lines[offset + k]:match("^(%u+)\t([^\t]+)\t([^\t]+)\t(.*)$")
    reqs[k] = method .. " " .. path .. " HTTP/1.1" .. host
      .. "\r\nContent-Type: application/json\r\nContent-Length: " .. #body
      .. (token == "-" and "" or "\r\nAuthorization: Bearer " .. token)
      .. "\r\nIdempotency-Key: " .. tid .. "-" .. k .. "-" .. offset
      .. "\r\n\r\n" .. body
  end
end
