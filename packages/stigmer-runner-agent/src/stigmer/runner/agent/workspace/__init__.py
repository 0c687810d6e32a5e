"""The agent's workspace: a folder per session that the built-in tools cannot leave (``_paths``),
seeded, saved as an artifact at the end of each turn and restored on any worker (``_lifecycle``)."""

from ._lifecycle import ATTACHMENTS, RunWorkspace, needs_workspace, session_workspace, workspaces_dir
from ._paths import DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, OutsideWorkspace, Workspace, WorkspaceTooLarge

__all__ = [
    "ATTACHMENTS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FILES",
    "OutsideWorkspace",
    "RunWorkspace",
    "Workspace",
    "WorkspaceTooLarge",
    "needs_workspace",
    "session_workspace",
    "workspaces_dir",
]
