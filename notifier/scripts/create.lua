-- KEYS: job hash, history stream. ARGV: field/value pairs (values JSON-encoded).
-- Records a new job (its times from Redis's clock) and its first history entry; returns the time.
local t = now()
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'created_at', t, 'updated_at', t)
redis.call('EXPIRE', KEYS[1], UNFINISHED_TTL)
redis.call('XADD', KEYS[2], '1-0', 'snapshot', (snapshot_json(KEYS[1])))
redis.call('EXPIRE', KEYS[2], UNFINISHED_TTL)
return t
