-- wrk scenario: GET of many paths in turn (env PATHS: a file, one path per line, e.g. a
-- search query mix). Every request is built once, in init (see purchase.lua for why).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local paths = {}
  for line in io.lines(os.getenv("PATHS")) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  reqs = {}
  for k = 1, #paths do
    reqs[k] = wrk.format("GET", paths[k])
  end
  -- threads start at different places in the mix
  i = (tid * 7919) % #reqs
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
