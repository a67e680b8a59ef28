"""ETag / If-Match for sessions: the ETag is the session's version, `"<n>"`."""

from __future__ import annotations

from agent_runtime.errors import PreconditionFailedError

__all__ = ["etag", "resolve_if_match"]


def etag(version: int) -> str:
    return f'"{version}"'


def _strong_versions(header: str) -> set[int]:
    versions = set()
    for tag in header.split(","):
        tag = tag.strip()
        # If-Match uses strong comparison: weak tags (W/"..") never match.
        if len(tag) >= 2 and tag[0] == tag[-1] == '"' and tag[1:-1].isdigit():
            versions.add(int(tag[1:-1]))
    return versions


def resolve_if_match(header: str | None, current: int | None) -> int | None:
    """The version a conditional write must still find, or None without If-Match.

    Raises `PreconditionFailedError` when the header cannot match `current`
    (the stored version, None if the session does not exist). The write then
    repeats the check atomically with the returned version.
    """
    if header is None:
        return None
    if current is None:
        raise PreconditionFailedError("If-Match given but the session does not exist")
    if header.strip() == "*" or current in _strong_versions(header):
        return current
    raise PreconditionFailedError(
        f"If-Match {header.strip()} does not match the current version {etag(current)}"
    )
