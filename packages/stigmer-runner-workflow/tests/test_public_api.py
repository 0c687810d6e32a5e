"""The public API of stigmer.runner.workflow is exactly what __all__ pins."""

from __future__ import annotations

import stigmer.runner.workflow as package

EXPECTED = {
    "CHECKPOINT_VERSION",
    "ERROR_TYPE_BASE",
    "ErrorKind",
    "Host",
    "GrpcRequest",
    "HttpRequest",
    "HttpResponse",
    "InProcessHost",
    "Interpreter",
    "Problem",
    "ProcessResult",
    "Reference",
    "SUPPORTED_DSL_VERSIONS",
    "TASK_KINDS",
    "TaskKind",
    "Validation",
    "Workflow",
    "WorkflowError",
    "WorkflowRunner",
    "WorkflowValidationError",
    "check_deterministic",
    "error_type",
    "keep_validated",
    "load_workflow",
    "run_workflow",
    "validate_workflow",
    "validate_document",
}


def test_all_is_pinned() -> None:
    assert set(package.__all__) == EXPECTED
    assert len(set(package.__all__)) == len(package.__all__)  # ruff (RUF022) keeps it sorted


def test_every_exported_name_exists_and_is_public() -> None:
    for name in package.__all__:
        obj = getattr(package, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__.startswith("stigmer.runner.workflow"), name
        assert not name.startswith("_")
