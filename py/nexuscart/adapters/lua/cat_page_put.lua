-- A product page built from PostgreSQL, shared with every edge worker (adapters/
-- catalog_store.py: share_page): stored only if the product has not changed since the
-- builder read its generation, before its PostgreSQL read. A change moves the generation
-- on and deletes the shared page first (publish_changed), so a build that read the
-- product before the change can never be stored after it.
-- KEYS[1] cat:{p<id>}:page, KEYS[2] cat:{p<id>}:gen
-- ARGV[1] the generation read before the build ('0': none yet), ARGV[2] the page,
-- ARGV[3] its time to live (ms)
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
