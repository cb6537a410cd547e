"""The job store: one Redis hash per job, its capped event history, and the set of running jobs.

Every change of a job goes through one Lua script, so bumping ``seq``, writing the new state and
appending the snapshot to the history happen in one atomic step and one round trip. The store
publishes nothing: ``notifier.events`` sends each new snapshot through Flask-SocketIO's message
queue. Each call that writes (create, change, cancel) carries a token: a retried call whose first
reply was lost finds its own token and gets back what it wrote, so a lost reply never bumps
``seq`` twice, never fails a create, and never turns a final update or a revoke into a refusal. Every time comes from
Redis's ``TIME``, so hosts with skewed clocks still agree on liveness, leases and timestamps.
"""

import json
import uuid

import redis

from . import scripts
from .fastpath import ScriptRunner

PENDING, STARTED, PROGRESS = "PENDING", "STARTED", "PROGRESS"
SUCCESS, FAILURE, REVOKED, LOST = "SUCCESS", "FAILURE", "REVOKED", "LOST"
FINAL_STATES = frozenset({SUCCESS, FAILURE, REVOKED, LOST})
RUNNING_STATES = frozenset({STARTED, PROGRESS})

SNAPSHOT_FIELDS = (
    "job_id", "kind", "params", "state", "current", "total", "percent", "message",
    "result", "error", "seq", "created_at", "updated_at", "finished_at",
)
_STORED_FIELDS = [name for name in SNAPSHOT_FIELDS if name != "percent"]
SCRIPT_FIELDS = ("token", "cancel_call", "runner")  # kept in the job's hash by the scripts themselves
UNFINISHED_TTL = 7 * 24 * 3600  # a job nobody runs (or whose worker vanished) is forgotten after a week
MAX_CONNECTIONS = 50  # per process; more commands than this at once queue for a connection
POOL_TIMEOUT = 5  # seconds to wait for a free connection before failing like an outage
PATIENCE = 20  # retries of a patient client: about half a minute of Redis being away

class JobNotFound(LookupError):
    """No job has that id (or it has expired)."""


class NotStorable(ValueError):
    """A value of a change cannot be stored as JSON; nothing was written."""


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


def connect(url, *, patient=False, **options):
    """A Redis client for the store; a patient one (for workers) rides out a Redis restart."""
    options.update(decode_responses=True, socket_connect_timeout=2, socket_timeout=5,
                   health_check_interval=30)
    if patient:
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry
        options.update(retry=Retry(ExponentialBackoff(cap=2.0), PATIENCE),
                       retry_on_error=[redis.ConnectionError, redis.TimeoutError])
    # redis-py's default pool refuses a 101st concurrent command ("Too many connections"): a web
    # process serving many sockets at once waits its turn for a connection instead.
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS,
                                                 timeout=POOL_TIMEOUT, **options)
    return redis.Redis(connection_pool=pool)


def percent_of(current, total, state):
    """The snapshot's ``percent``, rounded as the store's script rounds it."""
    if state == SUCCESS:
        return 100.0
    if total:
        return float(f"{min(100.0, 100.0 * (current or 0) / total):.1f}")
    return 0.0


def _json(name, value):
    """A field's stored form: strict JSON (a NaN would be stored, then break browsers' parsers)."""
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NotStorable(f"the {name} could not be stored as JSON: {exc}") from None


def _held_by(runner):
    """The scripts' form of a ``held_by`` condition: the runner id as stored (JSON), or none."""
    return "" if runner is None else json.dumps(runner)


def _snapshot(raw):
    snapshot = {name: raw.get(name) for name in SNAPSHOT_FIELDS}
    snapshot["percent"] = percent_of(raw.get("current"), raw.get("total"), raw.get("state"))
    return snapshot


class JobStore:
    """Creates, reads and changes jobs in Redis; both the web process and the workers use it."""

    def __init__(self, client, *, prefix="notifier:", history_length=1000, finished_ttl=86400):
        self.redis = client
        self.prefix = prefix
        config = (int(history_length), int(finished_ttl), UNFINISHED_TTL)
        for name in ("create", "update", "cancel", "touch", "stalled"):
            setattr(self, f"_{name}", client.register_script(scripts.load(name, SNAPSHOT_FIELDS, config)))
        self._run = ScriptRunner(client).run  # how each script reaches Redis: fastpath.py

    @classmethod
    def from_settings(cls, settings, *, patient=False):
        return cls(connect(settings.redis_url, patient=patient), prefix=settings.key_prefix,
                   history_length=settings.history_length, finished_ttl=settings.finished_ttl)

    def _job_keys(self, job_id):
        return [f"{self.prefix}job:{job_id}", f"{self.prefix}history:{job_id}"]

    @property
    def _running_key(self):
        return f"{self.prefix}running"

    def create(self, kind, params, *, total=None, internal=None, job_id=None):
        """Record a new PENDING job (seq 0, also the first history entry) and return its snapshot;
        its id is ``job_id`` (a UUID4, e.g. a Celery task's id) or a new one.

        ``internal`` fields (e.g. a cancel token's hash) are kept in the job's hash beside the
        snapshot's, never in a snapshot; read one back with ``get_field``.
        """
        job_id = job_id or str(uuid.uuid4())
        raw = {
            "job_id": job_id, "kind": kind, "params": params, "state": PENDING,
            "current": 0, "total": total, "message": "queued", "result": None, "error": None,
            "seq": 0, "finished_at": None, "cancel_requested": False, "attempts": 0,
        }
        internal = internal or {}
        if set(internal) & {*raw, *SNAPSHOT_FIELDS, *SCRIPT_FIELDS}:
            raise ValueError(f"internal fields may not replace the job's own: {sorted(internal)}")
        args = [uuid.uuid4().hex]  # a retry of this call after a lost reply is recognised
        for name, value in [*raw.items(), *internal.items()]:
            args += [name, _json(name, value)]
        created = float(self._run(self._create, self._job_keys(job_id), args))
        return _snapshot({**raw, "created_at": created, "updated_at": created})

    def delete(self, job_id):
        """Forget a job entirely (used when it could not be enqueued)."""
        job_key, history_key = self._job_keys(job_id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(job_key, history_key)
            pipe.zrem(self._running_key, job_key)
            pipe.execute()

    def get(self, job_id):
        """The current snapshot of a job; raises JobNotFound."""
        values = self.redis.hmget(self._job_keys(job_id)[0], _STORED_FIELDS)
        if values[0] is None:
            raise JobNotFound(job_id)
        return _snapshot({name: json.loads(value) for name, value in zip(_STORED_FIELDS, values)
                          if value is not None})

    def get_field(self, job_id, name):
        """One stored field of a job (internal ones too), or None."""
        value = self.redis.hget(self._job_keys(job_id)[0], name)
        return None if value is None else json.loads(value)

    def update(self, job_id, *, only_from=(), stale_for=None, held_by=None, **changes):
        """Apply changes as one new event (seq + 1) and return the new snapshot.

        ``only_from`` restricts the states the job may be in; ``stale_for`` requires that the job
        showed no sign of life for that many seconds; ``held_by`` requires that the job's
        ``runner`` field is that id (a worker's changes are fenced by the runner that started
        the job). Raises JobRefused, JobNotFound, or NotStorable (before anything is written).
        """
        return self._changed(job_id, self._update, only_from, stale_for, changes, held_by)

    def cancel(self, job_id, **changes):
        """Ask a job to stop. One that has not started is revoked at once with ``changes``: returns
        its new snapshot. A running one is flagged (its worker stops at its next step): returns
        None. Raises JobRefused when the job is already final, JobNotFound when unknown."""
        return self._changed(job_id, self._cancel, (PENDING,), None, {"state": REVOKED, **changes})

    def _changed(self, job_id, script, only_from, stale_for, changes, held_by=None):
        """Run a script that may make a change (``change`` in scripts/prelude.lua)."""
        # A fresh token per call: a retry of this same call after a lost reply is recognised.
        args = [uuid.uuid4().hex, ",".join(only_from),
                "" if stale_for is None else repr(float(stale_for)), _held_by(held_by)]
        for name, value in changes.items():
            args += [name, _json(name, value)]
        reply = self._run(script, [*self._job_keys(job_id), self._running_key], args)
        status = reply[0]
        if status == "missing":
            raise JobNotFound(job_id)
        if status in ("refused", "final"):
            raise JobRefused(reply[1])
        return json.loads(reply[1]) if len(reply) > 1 else None  # a flagged running job: None

    def touch(self, job_id, *, held_by=None):
        """Record a sign of life from a running job; returns True if a cancel was requested.
        Raises JobRefused when ``held_by`` is given and another runner holds the job now."""
        flag = self._run(self._touch, [*self._job_keys(job_id), self._running_key], [_held_by(held_by)])
        if isinstance(flag, list):
            raise JobRefused(flag[1])
        return flag == "true"

    def history(self, job_id, after_seq=-1):
        """The recorded snapshots of a job with seq > after_seq, oldest first."""
        entries = self.redis.xrange(self._job_keys(job_id)[1], min=f"{after_seq + 2}-0", max="+")
        return [json.loads(fields["snapshot"]) for _, fields in entries]

    def stalled(self, older_than, limit=100):
        """Ids of running jobs with no sign of life for ``older_than`` seconds (by Redis's clock)."""
        found = self._stalled(keys=[self._running_key], args=[repr(float(older_than)), limit])
        return [key.rsplit(":", 1)[1] for key in found]

    def running_count(self):
        """How many jobs are running (started and not final)."""
        return self.redis.zcard(self._running_key)

    def try_lock(self, name, owner, seconds):
        """Take the store-wide lock ``name`` for ``seconds`` unless someone holds it."""
        return bool(self.redis.set(f"{self.prefix}lock:{name}", owner, nx=True,
                                   px=max(1, int(seconds * 1000))))

    def ping(self):
        return self.redis.ping()
