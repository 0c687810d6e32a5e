"""Export: resources back to manifests (status, ids and system metadata stripped), for review or
to recreate them in another context (``stigmer export --all -o DIR`` then ``stigmer apply -f DIR``).

Secret values never leave the store: manifests hold secret names only, and SECRETS.md lists
the names to set in the target context.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stigmer.core import APPLY_ORDER, applicable_kinds
from stigmer.core.upstream import to_upstream

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from stigmer.core import Backend

__all__ = ["SECRETS_FILE", "Export", "export_resources", "secrets_of"]

_SYSTEM_METADATA = ("id", "slug", "version", "createdAt", "updatedAt")
SKILLS_DIR = ".skills"  # dot-directory: `apply -f DIR` does not read its files as manifests
WORKSPACES_DIR = ".workspaces"  # an agent's workspace seed (`workspace.path`), likewise
SECRETS_FILE = "SECRETS.md"


@dataclass
class Export:
    """The exported manifests, the files written (if any) and secret name -> users."""

    manifests: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    secrets: dict[str, list[str]] = field(default_factory=dict)

    @property
    def yaml(self) -> str:
        from stigmer.core import dump_yaml

        return dump_yaml(self.manifests) if self.manifests else ""


def strip(msg: Message) -> dict[str, Any]:
    """A stored resource as a manifest to apply elsewhere: no status, no system metadata."""
    from stigmer.core import message_to_manifest

    data = message_to_manifest(msg, include_status=False)
    meta = {k: v for k, v in (data.get("metadata") or {}).items() if k not in _SYSTEM_METADATA}
    data["metadata"] = meta
    return data


def secrets_of(manifests: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Secret names the resources declare (environments, agents, MCP servers, workflows' use.secrets,
    triggers' webhook keys)."""
    found: dict[str, list[str]] = {}
    for m in manifests:
        spec = m.get("spec") or {}
        who = f"{m['kind']}/{m['metadata']['name']}"
        names: list[str] = list(spec.get("secrets") or [])
        if m["kind"] == "Agent":
            names += [e["name"] for e in spec.get("env") or [] if e.get("secret")]
        if m["kind"] == "Workflow":
            names += list((spec.get("use") or {}).get("secrets") or [])
        if m["kind"] == "Trigger" and spec.get("secret"):
            names.append(spec["secret"])  # the webhook's HMAC key
        for name in names:
            users = found.setdefault(str(name), [])
            if who not in users:
                users.append(who)
    return dict(sorted(found.items()))


async def _all(backend: Backend, kind: str) -> list[Message]:
    from stigmer.core import unwrap
    from stigmer.proto.v1 import backend_service_pb2 as svc

    out: list[Message] = []
    token = ""
    while True:
        page = await backend.list(svc.ListRequest(kind=kind, page_size=500, page_token=token))
        out.extend(unwrap(r) for r in page.resources)
        token = page.next_page_token
        if not token:
            return out


FORMATS = ("stigmer", "upstream")


async def export_resources(
    backend: Backend,
    *,
    kind: str | None = None,
    name: str | None = None,
    directory: Path | None = None,
    format: str = "stigmer",
) -> Export:
    """Read resources (one, one kind, or all) and, with ``directory``, write them there.
    ``format="upstream"`` maps them to upstream Stigmer's manifests where a mapping exists."""
    from stigmer.core import InvalidArgument, unwrap

    if format not in FORMATS:
        raise InvalidArgument(
            f"unknown export format {format!r}; use one of: {', '.join(FORMATS)}", ["format"]
        )
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import meta_pb2

    messages: list[Message] = []
    if kind is not None and name is not None:
        ref = meta_pb2.ResourceRef(kind=kind, name=name)
        messages.append(unwrap(await backend.get(svc.GetRequest(ref=ref))))
    else:
        for k in [kind] if kind is not None else [k.name for k in applicable_kinds() if k.exported]:
            messages.extend(await _all(backend, k))
    result = Export()
    result.manifests = [strip(m) for m in messages]
    result.manifests.sort(key=lambda m: APPLY_ORDER.get(m["kind"], 9))
    result.secrets = secrets_of(result.manifests)
    if directory is not None:
        await _write(backend, directory, result, upstream=format == "upstream")
    elif format == "upstream":
        for manifest in result.manifests:
            if manifest["kind"] == "Skill" and (spec := manifest.get("spec") or {}).get("artifact"):
                spec["content"] = await _skill_md(backend, spec.pop("artifact"))
        result.manifests = [to_upstream(m) for m in result.manifests]
    return result


async def _skill_md(backend: Backend, key: str) -> str:
    """The SKILL.md text inside a skill's stored artifact."""
    import io
    import tarfile

    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.sdk._skillpack import SKILL_FILE

    blob = await backend.get_artifact(svc.GetArtifactRequest(key=key))
    with tarfile.open(fileobj=io.BytesIO(blob.content)) as tar:
        try:
            member = tar.extractfile(SKILL_FILE)
        except KeyError:
            return ""
        return member.read().decode("utf-8") if member is not None else ""


async def _write(backend: Backend, directory: Path, result: Export, upstream: bool = False) -> None:
    from stigmer.core import dump_yaml, slugify
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.sdk._skillpack import unpack_skill

    directory.mkdir(parents=True, exist_ok=True)
    for manifest in result.manifests:
        slug = slugify(manifest["metadata"]["name"])
        spec = manifest.get("spec") or {}
        if manifest["kind"] == "Skill" and spec.get("artifact"):
            blob = await backend.get_artifact(svc.GetArtifactRequest(key=spec["artifact"]))
            unpack_skill(blob.content, directory / SKILLS_DIR / slug)
            spec.pop("artifact")
            spec["path"] = f"../{SKILLS_DIR}/{slug}"
        seed = spec.get("workspace") or {}
        if manifest["kind"] == "Agent" and seed.get("artifact"):
            from stigmer.core import unpack_tree

            blob = await backend.get_artifact(svc.GetArtifactRequest(key=seed["artifact"]))
            unpack_tree(blob.content, directory / WORKSPACES_DIR / slug, what="the agent's workspace seed")
            seed.pop("artifact")
            seed["path"] = f"../{WORKSPACES_DIR}/{slug}"
        folder = directory / f"{manifest['kind'].lower()}s"
        folder.mkdir(exist_ok=True)
        path = folder / f"{slug}.yaml"
        if upstream:
            if (
                manifest["kind"] == "Skill"
                and (skill_md := directory / SKILLS_DIR / slug / "SKILL.md").is_file()
            ):
                spec["content"] = skill_md.read_text(encoding="utf-8")
            manifest = to_upstream(manifest)
        path.write_text(dump_yaml([manifest]), encoding="utf-8")
        result.files.append(path)
    secrets_file = directory / SECRETS_FILE
    secrets_file.write_text(_secrets_markdown(result.secrets), encoding="utf-8")
    result.files.append(secrets_file)


def _secrets_markdown(secrets: dict[str, list[str]]) -> str:
    lines = ["# Secrets to set", ""]
    if not secrets:
        return "\n".join([*lines, "These resources refer to no secrets.", ""])
    lines += [
        "These resources refer to secrets by name only; their values were not exported.",
        "Set each one in the context you apply them to, for example:",
        "",
        *(f"    stigmer --context TARGET secret set {name}" for name in secrets),
        "",
        "| secret | used by |",
        "|---|---|",
        *(f"| {name} | {', '.join(users)} |" for name, users in secrets.items()),
        "",
    ]
    return "\n".join(lines)
