-- KEYS: job hash, history stream. ARGV: token, then field/value pairs (values JSON-encoded).
-- Records a new job (its times from Redis's clock) and its first history entry; returns the time.
-- A retry whose first reply was lost finds its own token and gets the same answer.
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('HGET', KEYS[1], 'created_at') end
  return redis.error_reply('a job with this id exists already')
end
local t = now()
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'created_at', t, 'updated_at', t, 'token', ARGV[1])
redis.call('EXPIRE', KEYS[1], UNFINISHED_TTL)
redis.call('XADD', KEYS[2], '1-0', 'snapshot', (snapshot_json(KEYS[1])))
redis.call('EXPIRE', KEYS[2], UNFINISHED_TTL)
return t
