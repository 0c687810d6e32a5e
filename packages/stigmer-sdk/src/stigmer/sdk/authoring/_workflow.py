"""The Workflow builder: a Serverless Workflow 1.0 document, assembled in code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stigmer.proto.v1 import workflow_pb2
from stigmer.sdk.authoring._builder import ResourceBuilder, compact
from stigmer.sdk.authoring._tasks import Duration, Task, Tasks, _plain, duration, task_list

__all__ = ["Workflow"]


def _schema(document: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return {"format": "json", "document": dict(document)} if document is not None else None


class Workflow(ResourceBuilder[workflow_pb2.Workflow]):
    """A workflow resource. ``do`` is a mapping of task name to task (or ``(name, task)`` pairs);
    ``add()`` appends more. ``secrets`` are the names the document may read (``use.secrets``);
    ``use`` holds any other ``use`` section (``errors``, ``retries``, ``functions`` ...)."""

    kind = "Workflow"

    def __init__(
        self,
        name: str,
        *,
        namespace: str = "default",
        version: str = "1.0.0",
        dsl: str = "1.0.3",
        document_name: str | None = None,
        title: str | None = None,
        summary: str | None = None,
        tags: Mapping[str, str] | None = None,
        do: Tasks = (),
        input_schema: Mapping[str, Any] | None = None,
        input_from: str | Mapping[str, Any] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        output_as: str | Mapping[str, Any] | None = None,
        secrets: Sequence[str] = (),
        use: Mapping[str, Any] | None = None,
        timeout: Duration | None = None,
        extra: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, labels=labels, annotations=annotations)
        self.namespace, self.version, self.dsl = namespace, version, dsl
        self.document_name = document_name or name
        self.title, self.summary, self.tags = title, summary, dict(tags) if tags else None
        self.input_schema, self.input_from = input_schema, input_from
        self.output_schema, self.output_as = output_schema, output_as
        self.secrets = list(secrets)
        self.use = dict(use or {})
        self.timeout = timeout
        self.extra = dict(extra or {})
        self.tasks: list[dict[str, Any]] = task_list(do)

    def add(self, name: str, task: Task | Mapping[str, Any]) -> Workflow:
        """Append a task (returns the workflow, so calls chain)."""
        self.tasks.extend(task_list([(name, task)]))
        return self

    def spec(self) -> dict[str, Any]:
        if not self.tasks:
            raise ValueError(f"workflow {self.name!r} has no tasks: give do= or call add()")
        document = compact(
            {
                "dsl": self.dsl,
                "namespace": self.namespace,
                "name": self.document_name,
                "version": self.version,
                "title": self.title,
                "summary": self.summary,
                "tags": self.tags,
            }
        )
        use = dict(self.use)
        if self.secrets:
            use["secrets"] = list(self.secrets)
        spec = compact(
            {
                "document": document,
                "input": compact({"schema": _schema(self.input_schema), "from": self.input_from}) or None,
                "use": _plain(use) or None,
                "do": self.tasks,
                "timeout": {"after": duration(self.timeout)} if self.timeout is not None else None,
                "output": compact({"schema": _schema(self.output_schema), "as": self.output_as}) or None,
            }
        )
        spec.update(_plain(self.extra))
        return spec
