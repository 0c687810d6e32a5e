"""Stigmer core: the Backend protocol, errors, settings, manifests, plugin loader, redaction,
and the client logic the CLI and the SDK share (skill packing, apply order,
credentials and the connection of a context, finding a run target,
protobuf values as plain data)."""

from stigmer.core._apply_order import APPLY_ORDER, order_resources
from stigmer.core._backend import Backend, Runner
from stigmer.core._capabilities import CAPABILITY_RUN, CapabilityDenied, capabilities_config, has_capability
from stigmer.core._connection import Connection, connection_for
from stigmer.core._credentials import credentials_path, read_credentials, write_credentials
from stigmer.core._errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StigmerError,
    Unauthenticated,
    Unavailable,
    error_from_grpc_code,
)
from stigmer.core._files import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    open_private,
    private_dir,
    private_file,
    tighten_home,
)
from stigmer.core._headers import header_problem
from stigmer.core._ids import KIND_PREFIXES, new_id, slugify
from stigmer.core._limits import LIMIT_SETTINGS, Limits
from stigmer.core._manifests import (
    API_VERSION,
    KINDS,
    LoadedResource,
    dump_manifests,
    kind_of,
    load_manifests,
    message_to_manifest,
    parse_manifest,
    resource_from_message,
    unwrap,
)
from stigmer.core._plugins import (
    BACKENDS_GROUP,
    RUNNERS_GROUP,
    PluginNotFound,
    load_backend,
    load_plugin,
    load_runner,
)
from stigmer.core._principal import Principal, acting_as, current_principal
from stigmer.core._redact import (
    MASK,
    MIN_SECRET_LENGTH,
    RedactingFilter,
    Redactor,
    default_redactor,
    redact_logging,
)
from stigmer.core._schemas import SCHEMA_KINDS, manifest_schema, validate_manifest
from stigmer.core._settings import Context, Settings
from stigmer.core._skillpack import (
    SKILL_FILE,
    SKILL_MAX_BYTES,
    SKILL_MEDIA_TYPE,
    PackedSkill,
    artifact_key,
    pack_skill,
)
from stigmer.core._targets import RUNNABLE_KINDS, did_you_mean, find_target, resource_exists, resource_names
from stigmer.core._temporal import (
    DEFAULT_TEMPORAL_ADDRESS,
    TEMPORAL_ENV,
    TemporalConnection,
    add_temporal_arguments,
)
from stigmer.core._temporal_worker import heartbeating, run_temporal_worker
from stigmer.core._values import from_value, plain_value
from stigmer.core._worker_cli import WorkerCommand
from stigmer.core._yaml import ManifestError, dump_yaml, load_yaml_text

__all__ = [
    "API_VERSION",
    "APPLY_ORDER",
    "BACKENDS_GROUP",
    "CAPABILITY_RUN",
    "DEFAULT_TEMPORAL_ADDRESS",
    "KINDS",
    "KIND_PREFIXES",
    "LIMIT_SETTINGS",
    "MASK",
    "MIN_SECRET_LENGTH",
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "RUNNABLE_KINDS",
    "RUNNERS_GROUP",
    "SCHEMA_KINDS",
    "SKILL_FILE",
    "SKILL_MAX_BYTES",
    "SKILL_MEDIA_TYPE",
    "TEMPORAL_ENV",
    "AlreadyExists",
    "Backend",
    "CapabilityDenied",
    "Connection",
    "Context",
    "FailedPrecondition",
    "InvalidArgument",
    "Limits",
    "LoadedResource",
    "ManifestError",
    "NotFound",
    "PackedSkill",
    "PermissionDenied",
    "PluginNotFound",
    "Principal",
    "RedactingFilter",
    "Redactor",
    "Runner",
    "Settings",
    "StigmerError",
    "TemporalConnection",
    "Unauthenticated",
    "Unavailable",
    "WorkerCommand",
    "acting_as",
    "add_temporal_arguments",
    "artifact_key",
    "capabilities_config",
    "connection_for",
    "credentials_path",
    "current_principal",
    "default_redactor",
    "did_you_mean",
    "dump_manifests",
    "dump_yaml",
    "error_from_grpc_code",
    "find_target",
    "from_value",
    "has_capability",
    "header_problem",
    "heartbeating",
    "kind_of",
    "load_backend",
    "load_manifests",
    "load_plugin",
    "load_runner",
    "load_yaml_text",
    "manifest_schema",
    "message_to_manifest",
    "new_id",
    "open_private",
    "order_resources",
    "pack_skill",
    "parse_manifest",
    "plain_value",
    "private_dir",
    "private_file",
    "read_credentials",
    "redact_logging",
    "resource_exists",
    "resource_from_message",
    "resource_names",
    "run_temporal_worker",
    "slugify",
    "tighten_home",
    "unwrap",
    "validate_manifest",
    "write_credentials",
]
