-- Shared by every script of the job store: Redis's clock, the public snapshot built from the
-- stored JSON values (each field is stored as JSON text, so the snapshot is their concatenation),
-- and `change`, the one way a job gets a new event.
local FIELDS = {FIELDS_FROM_PYTHON}
-- This store's settings, written in by JobStore when it loads the scripts.
local HISTORY_LENGTH, FINISHED_TTL, UNFINISHED_TTL = CONFIG_FROM_PYTHON
local FINAL = {SUCCESS=true, FAILURE=true, REVOKED=true, LOST=true}

local function now()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', t[2])
end

local function snapshot_json(key)
  local values = redis.call('HMGET', key, unpack(FIELDS))
  local state, current, total = cjson.decode(values[4]), tonumber(values[5]), tonumber(values[6])
  local percent = '0.0'
  if state == 'SUCCESS' then percent = '100.0'
  elseif total and total > 0 then
    percent = string.format('%.1f', math.min(100, 100 * (current or 0) / total))
  end
  local parts = {}
  for i, name in ipairs(FIELDS) do
    local value = values[i]
    if name == 'percent' then value = percent end
    parts[i] = '"' .. name .. '":' .. (value or 'null')
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- KEYS: job hash, history stream, running set (scored by Redis time of the last sign of life).
-- ARGV: token, allowed states ("" = any unfinished), stale_for ("" = no liveness condition),
-- held_by (the JSON of the runner that must hold the job, "" = anyone), then field/value pairs
-- (values JSON-encoded).
-- Returns {"ok", snapshot JSON} (also for a retry of a change already made), {"refused", state}
-- or {"missing"}. Publishing the snapshot is the caller's business (notifier.events).
local function change(KEYS, ARGV)
  local state = redis.call('HGET', KEYS[1], 'state')
  if not state then return {'missing'} end
  if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return {'ok', (snapshot_json(KEYS[1]))} end
  state = cjson.decode(state)
  if FINAL[state] then return {'refused', state} end
  if ARGV[2] ~= '' and not string.find(',' .. ARGV[2] .. ',', ',' .. state .. ',', 1, true) then
    return {'refused', state}
  end
  -- A runner that lost the job to a takeover (its lease ran out) changes nothing any more.
  if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'runner') ~= ARGV[4] then return {'refused', state} end
  local t = now()
  if ARGV[3] ~= '' then
    local alive = redis.call('ZSCORE', KEYS[3], KEYS[1])
    if alive and tonumber(alive) >= tonumber(t) - tonumber(ARGV[3]) then return {'refused', state} end
  end
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  local new_state = state
  for i = 5, #ARGV, 2 do
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    if ARGV[i] == 'state' then new_state = cjson.decode(ARGV[i + 1]) end
  end
  redis.call('HSET', KEYS[1], 'updated_at', t, 'token', ARGV[1])
  local ttl = UNFINISHED_TTL
  if FINAL[new_state] then
    redis.call('HSET', KEYS[1], 'finished_at', t)
    redis.call('ZREM', KEYS[3], KEYS[1])
    ttl = FINISHED_TTL
  elseif new_state == 'STARTED' or new_state == 'PROGRESS' then
    redis.call('ZADD', KEYS[3], t, KEYS[1])
  else  -- PENDING again (a retry waits for its next run): nothing runs it now
    redis.call('ZREM', KEYS[3], KEYS[1])
  end
  redis.call('EXPIRE', KEYS[1], ttl)
  local snapshot = snapshot_json(KEYS[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', HISTORY_LENGTH, (seq + 1) .. '-0', 'snapshot', snapshot)
  redis.call('EXPIRE', KEYS[2], ttl)
  return {'ok', snapshot}
end
