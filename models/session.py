from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.expressions import Q
from tortoise.manager import Manager
from tortoise.models import Model

from models.limits import ID_MAX, TITLE_MAX

if TYPE_CHECKING:
    from tortoise.queryset import QuerySet

# A session is visible until it is soft-deleted. The rule, once per spelling:
# the ORM reads through `Session.visible` / `Session.visible_through()`, the
# hand-written SQL (models/queries/sessions.py) through `VISIBLE_SQL`.
_VISIBLE: dict[str, Any] = {"deleted_at__isnull": True}
VISIBLE_SQL = "deleted_at IS NULL"


class VisibleManager(Manager):
    """Sessions that are not soft-deleted. Like Django's advice for filtering
    managers, the default manager (`Session.filter`, `Session.all`) stays unfiltered:
    retention and hard deletes must see every row."""

    def __set_name__(self, owner: type[Model], name: str) -> None:
        self._model = owner

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().filter(**_VISIBLE)


class Session(Model):
    """A conversation. `id` is the caller's session id (legacy variant B)."""

    id = fields.CharField(max_length=ID_MAX, primary_key=True)
    title = fields.CharField(max_length=TITLE_MAX, null=True)
    description = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    last_activity = fields.DatetimeField(db_index=True)
    is_active = fields.BooleanField(default=True, db_index=True)
    deleted_at = fields.DatetimeField(null=True, db_index=True)
    # Incremented by every write to the session; served as its ETag.
    version = fields.IntField(default=1)
    # Random, replaced by every write to the messages: identifies the stored list,
    # so a process may trust its cached copy (see services/message_cache.py).
    messages_token = fields.BigIntField(default=0)

    visible = VisibleManager()

    class Meta:
        table = "sessions"

    def __str__(self) -> str:
        return self.id

    @staticmethod
    def visible_through(relation: str) -> Q:
        """The visibility filter seen from a related model, e.g. `"session"` from
        `Message` or `"context__session"` from `AgentSwitch`."""
        return Q(**{f"{relation}__{key}": value for key, value in _VISIBLE.items()})
