"""The ``todos`` tool set: the agent writes and updates its plan, a list of items with a status.

``write_todos`` replaces the whole list (the agent sends it back with the statuses changed);
``read_todos`` shows it. Each change is written to the execution at once: ``status.todos`` holds
the list as it stands and a ``todos`` event (data ``{"items": [...]}``) records it, so a follower
(``stigmer run``, ``execution logs -f``, the SDK) sees the plan move as the agent works.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stigmer.proto.v1 import execution_pb2
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

__all__ = ["TODO_STATUSES", "TodoItem", "TodoState", "todo_functions"]

TODO_STATUSES = ("pending", "in_progress", "completed", "cancelled")
MAX_ITEMS = 100


class TodoItem(TypedDict, total=False):
    """One item of the plan."""

    id: str
    content: str
    status: str


@dataclass
class TodoState:
    """The plan as it stands, and how a change is published (written to the execution)."""

    items: list[execution_pb2.TodoItem] = field(default_factory=list)
    publish: Callable[[list[execution_pb2.TodoItem]], Awaitable[None]] | None = None

    @classmethod
    def of(
        cls,
        stored: Sequence[execution_pb2.TodoItem],
        publish: Callable[[list[execution_pb2.TodoItem]], Awaitable[None]] | None,
    ) -> TodoState:
        return cls(
            [execution_pb2.TodoItem(id=i.id, content=i.content, status=i.status) for i in stored], publish
        )

    def render(self) -> str:
        if not self.items:
            return "the plan is empty"
        marks = {"pending": "[ ]", "in_progress": "[~]", "completed": "[x]", "cancelled": "[-]"}
        return "\n".join(f"{marks.get(i.status, '[ ]')} {i.id}. {i.content}" for i in self.items)


def todo_functions(state: TodoState) -> dict[str, Callable[..., Any]]:
    """The functions of the ``todos`` tool set, on ``state``."""

    async def write_todos(todos: list[TodoItem]) -> str:
        """Write your plan: the complete list of items, each with its status. Send the whole list
        again to update it (mark an item `in_progress` when you start it, `completed` when done).

        Args:
            todos: The items in order; each has `content`, `status` (pending, in_progress,
                completed or cancelled) and optionally an `id` (default: its position).
        """
        if len(todos) > MAX_ITEMS:
            return f"error: a plan holds at most {MAX_ITEMS} items"
        items: list[execution_pb2.TodoItem] = []
        for index, raw in enumerate(todos, 1):
            status = str(raw.get("status") or "pending").strip().lower().replace(" ", "_").replace("-", "_")
            if status not in TODO_STATUSES:
                return (
                    f"error: item {index}: status must be one of {', '.join(TODO_STATUSES)}, not {status!r}"
                )
            content = str(raw.get("content") or "").strip()
            if not content:
                return f"error: item {index} has no content"
            items.append(
                execution_pb2.TodoItem(id=str(raw.get("id") or index), content=content[:500], status=status)
            )
        state.items = items
        if state.publish is not None:
            await state.publish(items)
        return "plan saved:\n" + state.render()

    def read_todos() -> str:
        """Read your plan as it stands."""
        return state.render()

    return {"write_todos": write_todos, "read_todos": read_todos}
