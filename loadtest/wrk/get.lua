-- wrk scenario: GET of one path (env PATH_TO_GET), e.g. the sale view or the bare endpoint.
function init(args)
  p = os.getenv("PATH_TO_GET") or "/"
end

function request()
  return wrk.format("GET", p)
end
