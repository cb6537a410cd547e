-- KEYS and ARGV as for `change` (the change that revokes a job that has not started).
-- Flags the job for cancellation. A job that has not started is revoked at once: returns what
-- `change` returns. Otherwise returns {"running"}, {"final", state} or {"missing"}.
-- A retry whose first reply was lost gets the first call's answer, even if the job ended since.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if redis.call('HGET', KEYS[1], 'cancel_call') == ARGV[1] then
  if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return change(KEYS, ARGV) end
  return {'running'}
end
state = cjson.decode(state)
if FINAL[state] then return {'final', state} end
redis.call('HSET', KEYS[1], 'cancel_requested', 'true', 'cancel_call', ARGV[1])
if state == 'PENDING' then return change(KEYS, ARGV) end
return {'running'}
