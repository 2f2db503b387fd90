-- wrk scenario: GET of one path (env PATH_TO_GET), e.g. the sale view or the bare endpoint.
-- The request is built once: every scenario's generator costs as little per request as the
-- purchase scenario's prebuilt requests (see purchase.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
function init(args)
  req = wrk.format("GET", os.getenv("PATH_TO_GET") or "/")
end

function request()
  return req
end
