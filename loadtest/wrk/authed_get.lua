-- wrk scenario: GET of one path (env PATH_TO_GET) as many signed-in users in turn (env
-- TOKENS, see buyers.lua), e.g. GET /users/me/orders; each user also comes from its own
-- address (X-Forwarded-For, as purchase.lua's XFF=1). Requests are built once, in init.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
dofile(dir .. "buyers.lua")

function init(args)
  local tokens, offset = token_slice()
  local head = "GET " .. (os.getenv("PATH_TO_GET") or "/") .. " HTTP/1.1\r\nHost: " .. wrk.host
    .. ":" .. wrk.port .. "\r\nAuthorization: Bearer "
  reqs = {}
  for k = 1, #tokens do
    reqs[k] = head .. tokens[k] .. "\r\nX-Forwarded-For: " .. address(offset + k - 1)
      .. "\r\n\r\n"
  end
end
