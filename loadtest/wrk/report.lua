-- Loaded by the other scenarios (dofile): at the end of a run, the latency distribution
-- wrk kept (µs), for the performance suite's percentile plots and p95 (wrk's --latency
-- prints only 50/75/90/99), and its socket errors, on one line each.
function done(summary, latency, requests)
  local out = {}
  for _, p in ipairs({50, 75, 90, 95, 99, 99.9, 99.99}) do
    out[#out + 1] = string.format("%g=%d", p, latency:percentile(p))
  end
  out[#out + 1] = "100=" .. latency.max
  io.write("percentiles_us: " .. table.concat(out, " ") .. "\n")
  local e = summary.errors
  io.write(string.format("errors: connect=%d read=%d write=%d status=%d timeout=%d\n",
                         e.connect, e.read, e.write, e.status, e.timeout))
end
