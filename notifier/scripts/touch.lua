-- KEYS: job hash, history stream, running set. ARGV: held_by, as for `change`.
-- A sign of life from a running job: its liveness score and its keys' lifetime are renewed.
-- Returns whether someone asked to cancel it (nil when the job is no longer running), or
-- {"refused", state} when another runner holds it now (then nothing is renewed).
if not redis.call('ZSCORE', KEYS[3], KEYS[1]) then return nil end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'runner') ~= ARGV[1] then
  return {'refused', cjson.decode(redis.call('HGET', KEYS[1], 'state'))}
end
redis.call('ZADD', KEYS[3], 'XX', now(), KEYS[1])
redis.call('EXPIRE', KEYS[1], UNFINISHED_TTL)
redis.call('EXPIRE', KEYS[2], UNFINISHED_TTL)
return redis.call('HGET', KEYS[1], 'cancel_requested')
