-- KEYS: running set. ARGV: seconds without a sign of life, how many at most.
-- Returns the keys of jobs silent that long (by Redis's clock). Entries whose job hash is gone
-- (expired, evicted) are removed on the way, so they never hide a real stalled job.
local found, limit = {}, tonumber(ARGV[2])
local before = tonumber(now()) - tonumber(ARGV[1])
while #found < limit do
  local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', before, 'LIMIT', #found, limit - #found)
  if #batch == 0 then break end
  for _, key in ipairs(batch) do
    if redis.call('EXISTS', key) == 1 then table.insert(found, key)
    else redis.call('ZREM', KEYS[1], key) end
  end
end
return found
