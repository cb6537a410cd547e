-- KEYS and ARGV as for `change` (the change that revokes a job that has not started).
-- Flags the job for cancellation. A job that has not started is revoked at once: returns what
-- `change` returns. Otherwise returns {"running"}, {"final", state} or {"missing"}.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
state = cjson.decode(state)
if FINAL[state] then return {'final', state} end
redis.call('HSET', KEYS[1], 'cancel_requested', 'true')
if state == 'PENDING' then return change(KEYS, ARGV) end
return {'running'}
