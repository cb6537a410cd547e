-- KEYS: job hash, history stream, running set.
-- A sign of life from a running job: its liveness score and its keys' lifetime are renewed.
-- Returns whether someone asked to cancel it (nil when the job is no longer running).
if not redis.call('ZSCORE', KEYS[3], KEYS[1]) then return nil end
redis.call('ZADD', KEYS[3], 'XX', now(), KEYS[1])
redis.call('EXPIRE', KEYS[1], UNFINISHED_TTL)
redis.call('EXPIRE', KEYS[2], UNFINISHED_TTL)
return redis.call('HGET', KEYS[1], 'cancel_requested')
