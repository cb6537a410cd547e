"""The cancel tokens this user was given on submitting, so ``cancel JOB_ID`` works later.

One small JSON file, readable by this user only: ``$XDG_STATE_HOME/jobclient/cancel-tokens.json``
(``~/.local/state/…`` without it). It keeps the newest ``KEEP`` tokens; a job that old is long
finished, and a token for a finished job is of no use.
"""

import contextlib
import fcntl
import json
import os
import tempfile

KEEP = 200


def path():
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "jobclient", "cancel-tokens.json")


def _read(file):
    """[[job_id, token], ...] oldest first; an unreadable file holds nothing usable."""
    try:
        with open(file) as f:
            pairs = json.load(f)
    except (OSError, ValueError):
        return []
    if not isinstance(pairs, list):
        return []
    return [pair for pair in pairs
            if isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)]


@contextlib.contextmanager
def _locked(file):
    """Two clients submitting at once must not drop each other's token."""
    folder = os.path.dirname(file)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd = os.open(file + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def save(job_id, token):
    """Keep ``token`` for ``job_id`` (written whole, then renamed: never half a file)."""
    file = path()
    with _locked(file):
        pairs = [pair for pair in _read(file) if pair[0] != job_id]
        pairs = [*pairs, [job_id, token]][-KEEP:]
        fd, temporary = tempfile.mkstemp(dir=os.path.dirname(file), prefix=".cancel-tokens-")
        try:
            with os.fdopen(fd, "w") as f:  # mkstemp made it 0600
                json.dump(pairs, f)
            os.replace(temporary, file)
        except BaseException:
            os.unlink(temporary)
            raise


def load(job_id):
    """The token saved for ``job_id``, or None."""
    return dict(_read(path())).get(job_id)
