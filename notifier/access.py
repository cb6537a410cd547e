"""Cancel tokens: the capability that lets a job's submitter, and only them, cancel it.

A job id lets anyone who holds it watch the job; cancelling needs the token issued when the job
was created. The token is shown to the submitter once; the job store keeps only its SHA-256 (a
256-bit random token needs no slow hash) in an internal field of the job's hash, which no
snapshot, event or history entry carries. A request presents it as ``Authorization: Bearer
<token>``; it is compared in constant time.
"""

import hashlib
import hmac
import re
import secrets

HASH_FIELD = "cancel_token_sha256"  # internal field of the job's hash (see JobStore.create)
TOKEN_BYTES = 32  # 256 random bits
FORBIDDEN = "cancelling this job needs its cancel token, sent as 'Authorization: Bearer <token>'"
# What a token could be called in a query string: refused there, since query strings are logged.
QUERY_NAMES = ("cancel_token", "token", "access_token")
# RFC 6750's b64token, bounded: a header of any other shape carries no token at all.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] ([A-Za-z0-9._~+/-]{1,256}=*)")


class Forbidden(Exception):
    """The request does not hold the job's cancel capability."""


def issue():
    """A new cancel token and the internal fields that keep its hash: ``(token, fields)``."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, {HASH_FIELD: _digest(token)}


def _digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token, stored_hash):
    """True when ``token`` is the one whose hash was stored; False for None or no stored hash."""
    if not isinstance(token, str) or not isinstance(stored_hash, str):
        return False
    return hmac.compare_digest(_digest(token), stored_hash)


def bearer_token(header):
    """The token of an ``Authorization: Bearer <token>`` header value, or None for any other shape."""
    found = _BEARER.fullmatch(header) if isinstance(header, str) else None
    return found.group(1) if found else None


def request_token(request):
    """The cancel token a Flask/werkzeug request presents, or None.

    A token in the query string makes the request carry none, even beside a good header: a
    client that puts it there must learn at once, before its tokens pile up in access logs.
    """
    if any(name in request.args for name in QUERY_NAMES):
        return None
    return bearer_token(request.headers.get("Authorization"))


def check(store, job_id, token):
    """Raise Forbidden unless ``token`` is ``job_id``'s cancel token; JobNotFound if no such job.

    A job recorded without a token (no hash kept) cannot be cancelled this way by anyone.
    """
    stored = store.get_field(job_id, HASH_FIELD)
    if stored is None:
        store.get(job_id)  # raises JobNotFound for an unknown job
    if not matches(token, stored):
        raise Forbidden(FORBIDDEN)
