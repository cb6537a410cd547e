"""The job store: one Redis hash per job, its capped event history, and the set of running jobs.

Every change of a job goes through one Lua script, so bumping ``seq``, writing the new state and
appending the snapshot to the history happen atomically: the history is ordered by ``seq`` and a
job that reached a final state never changes again.
"""

import json
import time
import uuid

import redis

PENDING, STARTED, PROGRESS = "PENDING", "STARTED", "PROGRESS"
SUCCESS, FAILURE, REVOKED, LOST = "SUCCESS", "FAILURE", "REVOKED", "LOST"
FINAL_STATES = frozenset({SUCCESS, FAILURE, REVOKED, LOST})
RUNNING_STATES = frozenset({STARTED, PROGRESS})

SNAPSHOT_FIELDS = (
    "job_id", "kind", "params", "state", "current", "total", "percent", "message",
    "result", "error", "seq", "created_at", "updated_at", "finished_at",
)
UNFINISHED_TTL = 7 * 24 * 3600  # a job nobody ever runs is forgotten after a week
MAX_CONNECTIONS = 50  # per process; more commands than this at once queue for a connection
POOL_TIMEOUT = 5  # seconds to wait for a free connection before failing like an outage

# KEYS: job hash, history stream, running-job sorted set (scored by the last sign of life).
# ARGV: now, history length, finished ttl, allowed states ("" = any unfinished),
#       stale_before (0 = no liveness condition), then field/value pairs (values JSON-encoded).
# Returns {"ok", field, value, ...} or {"refused", current state} or {"missing"}.
_UPDATE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
state = cjson.decode(state)
local final = {SUCCESS=true, FAILURE=true, REVOKED=true, LOST=true}
if final[state] then return {'refused', state} end
if ARGV[4] ~= '' and not string.find(',' .. ARGV[4] .. ',', ',' .. state .. ',', 1, true) then
  return {'refused', state}
end
local stale_before = tonumber(ARGV[5])
if stale_before > 0 then
  local alive = redis.call('ZSCORE', KEYS[3], KEYS[1])
  if alive and tonumber(alive) >= stale_before then return {'refused', state} end
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local new_state = state
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if ARGV[i] == 'state' then new_state = cjson.decode(ARGV[i + 1]) end
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[1])
if final[new_state] then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[1])
  redis.call('ZREM', KEYS[3], KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
elseif new_state == 'STARTED' or new_state == 'PROGRESS' then
  redis.call('ZADD', KEYS[3], ARGV[1], KEYS[1])
end
local fields = redis.call('HGETALL', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], (seq + 1) .. '-0', unpack(fields))
redis.call('EXPIRE', KEYS[2], redis.call('TTL', KEYS[1]))
table.insert(fields, 1, 'ok')
return fields
"""

# KEYS: job hash. Returns {"missing"}, {"final", state}, {"pending"} or {"running"}.
_REQUEST_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
state = cjson.decode(state)
if state == 'SUCCESS' or state == 'FAILURE' or state == 'REVOKED' or state == 'LOST' then
  return {'final', state}
end
redis.call('HSET', KEYS[1], 'cancel_requested', 'true')
if state == 'PENDING' then return {'pending'} end
return {'running'}
"""


class JobNotFound(LookupError):
    """No job has that id (or it has expired)."""


class JobRefused(Exception):
    """The job is not in a state that allows the change; ``state`` says which state it is in."""

    def __init__(self, state):
        super().__init__(f"job is {state}")
        self.state = state


def is_job_id(value):
    """True for the canonical text of a UUID4, the only form a job id takes."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == value


def connect(url, *, patient=False):
    """A Redis client for the store; a patient one (for workers) rides out short outages."""
    options = dict(decode_responses=True, socket_connect_timeout=2, socket_timeout=5,
                   health_check_interval=30)
    if patient:
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry
        options.update(retry=Retry(ExponentialBackoff(cap=2.0), 8),
                       retry_on_error=[redis.ConnectionError, redis.TimeoutError])
    # redis-py's default pool refuses a 101st concurrent command ("Too many connections"): a web
    # process serving many sockets at once waits its turn for a connection instead.
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS,
                                                 timeout=POOL_TIMEOUT, **options)
    return redis.Redis(connection_pool=pool)


def _decode(pairs):
    """Turn the flat field/value list of a job hash into a public snapshot."""
    raw = {pairs[i]: json.loads(pairs[i + 1]) for i in range(0, len(pairs), 2)}
    return _snapshot(raw)


def _snapshot(raw):
    current, total = raw.get("current", 0), raw.get("total")
    if raw.get("state") == SUCCESS:
        percent = 100.0
    elif total:
        percent = round(min(100.0, 100.0 * current / total), 1)
    else:
        percent = 0.0
    snapshot = {name: raw.get(name) for name in SNAPSHOT_FIELDS}
    snapshot["percent"] = percent
    return snapshot


class JobStore:
    """Creates, reads and changes jobs in Redis; both the web process and the workers use it."""

    def __init__(self, client, *, prefix="notifier:", history_length=1000, finished_ttl=86400):
        self.redis = client
        self.prefix = prefix
        self.history_length = history_length
        self.finished_ttl = int(finished_ttl)
        self._update = client.register_script(_UPDATE)
        self._request_cancel = client.register_script(_REQUEST_CANCEL)

    @classmethod
    def from_settings(cls, settings, *, patient=False):
        return cls(connect(settings.redis_url, patient=patient), prefix=settings.key_prefix,
                   history_length=settings.history_length, finished_ttl=settings.finished_ttl)

    def _job_key(self, job_id):
        return f"{self.prefix}job:{job_id}"

    def _history_key(self, job_id):
        return f"{self.prefix}history:{job_id}"

    @property
    def _running_key(self):
        return f"{self.prefix}running"

    def create(self, kind, params, *, total=None):
        """Record a new PENDING job (seq 0, also the first history entry) and return its snapshot."""
        now = time.time()
        job_id = str(uuid.uuid4())
        raw = {
            "job_id": job_id, "kind": kind, "params": params, "state": PENDING,
            "current": 0, "total": total, "message": "queued", "result": None, "error": None,
            "seq": 0, "created_at": now, "updated_at": now, "finished_at": None,
            "cancel_requested": False, "attempts": 0,
        }
        encoded = {name: json.dumps(value) for name, value in raw.items()}
        key = self._job_key(job_id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=encoded)
            pipe.expire(key, UNFINISHED_TTL)
            pipe.xadd(self._history_key(job_id), encoded, id="1-0")
            pipe.expire(self._history_key(job_id), UNFINISHED_TTL)
            pipe.execute()
        return _snapshot(raw)

    def delete(self, job_id):
        """Forget a job entirely (used when it could not be enqueued)."""
        key = self._job_key(job_id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key, self._history_key(job_id))
            pipe.zrem(self._running_key, key)
            pipe.execute()

    def get(self, job_id):
        """The current snapshot of a job; raises JobNotFound."""
        pairs = self.redis.hgetall(self._job_key(job_id))
        if not pairs:
            raise JobNotFound(job_id)
        return _snapshot({name: json.loads(value) for name, value in pairs.items()})

    def get_field(self, job_id, name):
        """One stored field of a job (internal ones too), or None."""
        value = self.redis.hget(self._job_key(job_id), name)
        return None if value is None else json.loads(value)

    def update(self, job_id, *, only_from=(), stale_for=None, **changes):
        """Apply changes as one new event (seq + 1) and return the new snapshot.

        ``only_from`` restricts the states the job may be in; ``stale_for`` requires that the job
        showed no sign of life for that many seconds. Raises JobRefused or JobNotFound.
        """
        now = time.time()
        stale_before = now - stale_for if stale_for is not None else 0
        args = [json.dumps(now), self.history_length, self.finished_ttl,
                ",".join(only_from), repr(stale_before)]
        for name, value in changes.items():
            args += [name, json.dumps(value)]
        reply = self._update(keys=[self._job_key(job_id), self._history_key(job_id), self._running_key],
                             args=args)
        status = reply[0]
        if status == "missing":
            raise JobNotFound(job_id)
        if status == "refused":
            raise JobRefused(reply[1])
        return _decode(reply[1:])

    def request_cancel(self, job_id):
        """Flag a job for cancellation; returns 'pending' or 'running'. Raises JobRefused if final."""
        reply = self._request_cancel(keys=[self._job_key(job_id)])
        if reply[0] == "missing":
            raise JobNotFound(job_id)
        if reply[0] == "final":
            raise JobRefused(reply[1])
        return reply[0]

    def touch(self, job_id):
        """Record a sign of life from a running job without publishing an event."""
        self.redis.zadd(self._running_key, {self._job_key(job_id): time.time()}, xx=True)

    def history(self, job_id, after_seq=-1):
        """The recorded snapshots of a job with seq > after_seq, oldest first."""
        entries = self.redis.xrange(self._history_key(job_id), min=f"{after_seq + 2}-0", max="+")
        return [_snapshot({k: json.loads(v) for k, v in fields.items()}) for _, fields in entries]

    def stalled(self, older_than, limit=100):
        """Ids of running jobs with no sign of life for ``older_than`` seconds."""
        keys = self.redis.zrangebyscore(self._running_key, "-inf", time.time() - older_than,
                                        start=0, num=limit)
        return [key.rsplit(":", 1)[1] for key in keys]

    def running_count(self):
        """How many jobs are running (started and not final)."""
        return self.redis.zcard(self._running_key)

    def ping(self):
        return self.redis.ping()
