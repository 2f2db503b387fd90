-- Loaded by the scenarios that send every request as another signed-in buyer (dofile):
-- purchase.lua, authed_get.lua. Each wrk thread takes its own slice of env TOKENS (a file,
-- one JWT per line; WRK_THREADS threads) and builds its requests once, in init, into the
-- global reqs, which request() sends in turn.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

-- this thread's tokens, and the index in the file of the first one
function token_slice()
  local tokens = {}
  for line in io.lines(os.getenv("TOKENS")) do
    tokens[#tokens + 1] = line
  end
  local n = math.floor(#tokens / tonumber(os.getenv("WRK_THREADS") or "1"))
  local offset = n * tid
  local slice = {}
  for k = 1, n do
    slice[k] = tokens[offset + k]
  end
  return slice, offset
end

-- buyer i's client address: 10.0.0.0/8 holds 16M distinct ones
function address(i)
  return string.format("10.%d.%d.%d", math.floor(i / 65536) % 256, math.floor(i / 256) % 256,
                       i % 256)
end

local n = nil

function request()
  n = n or #reqs  -- once: the length operator is not free on a table this size
  counter = counter + 1
  return reqs[(counter - 1) % n + 1]
end
