"""The public API of stigmer.runner.workflow is exactly what __all__ pins."""

from __future__ import annotations

import stigmer.runner.workflow as package

EXPECTED = {
    "ERROR_TYPE_BASE",
    "ErrorKind",
    "Workflow",
    "WorkflowError",
    "WorkflowValidationError",
    "check_deterministic",
    "error_type",
    "load_workflow",
}


def test_all_is_pinned() -> None:
    assert set(package.__all__) == EXPECTED
    assert sorted(package.__all__) == list(package.__all__)


def test_every_exported_name_exists_and_is_public() -> None:
    for name in package.__all__:
        obj = getattr(package, name)
        assert getattr(obj, "__module__", package.__name__).startswith("stigmer.runner.workflow")
