"""ETag / If-Match for sessions: the ETag is the session's version, `"<n>"`.

`If-Match` is `*` or a comma-separated list of entity tags (RFC 9110: `"<tag>"`,
or a weak `W/"<tag>"`, which strong comparison never matches). Tags are compared
as text, never converted to numbers. A header that is not visible ASCII, or has a
tag longer than any ETag this service gives (`MAX_TAG` characters), is refused as
a malformed header (400, nothing written); a well-formed tag that is not the
current one (`"abc"`, `"2"` when the version is 3) is 412, as any tag that does not
match.
"""

from __future__ import annotations

import re

from agent_runtime.errors import BadRequestError, PreconditionFailedError

__all__ = ["MAX_TAG", "etag", "resolve_if_match"]

# The longest entity tag accepted: ours are at most 21 characters ("<19 digits>").
MAX_TAG = 64
_VISIBLE_ASCII = re.compile(r"[\x20-\x7e\t]*")


def etag(version: int) -> str:
    return f'"{version}"'


def _tags(header: str) -> list[str]:
    """The entity tags of an If-Match list, as given (quotes included)."""
    if not _VISIBLE_ASCII.fullmatch(header):
        raise BadRequestError("If-Match must be * or a list of entity tags in visible ASCII")
    tags = [tag.strip() for tag in header.split(",")]
    if any(len(tag) > MAX_TAG for tag in tags):
        raise BadRequestError(f"If-Match has an entity tag longer than {MAX_TAG} characters")
    return tags


def resolve_if_match(header: str | None, current: int | None) -> int | None:
    """The version a conditional write must still find, or None without If-Match.

    Raises `BadRequestError` (400) for a header that does not parse, and
    `PreconditionFailedError` when the header cannot match `current` (the stored
    version, None if the session does not exist). The write then repeats the check
    atomically with the returned version.
    """
    if header is None:
        return None
    tags = _tags(header)
    if current is None:
        raise PreconditionFailedError("If-Match given but the session does not exist")
    # If-Match uses strong comparison: weak tags (W/"..") never match.
    if header.strip() == "*" or etag(current) in tags:
        return current
    raise PreconditionFailedError(
        f"If-Match {header.strip():.80} does not match the current version {etag(current)}"
    )
