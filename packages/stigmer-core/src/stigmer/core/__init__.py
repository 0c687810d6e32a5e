"""Stigmer core: the Backend protocol, errors, settings, manifests, plugin loader, redaction,
the event writer every runner reports through, protobuf values as plain data, and the client
logic the CLI and the SDK share (skill packing, apply order, credentials and the connection of a
context, finding a run target)."""

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
from stigmer.core._event_writer import EventWriter, NewEvent, RunStopped, check_event_limits
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
from stigmer.core._kinds import (
    EXECUTION,
    KIND_TABLE,
    Kind,
    applicable_kinds,
    kind_info,
    kind_spellings,
    lookup_kind,
)
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
from stigmer.core._phases import (
    PHASE_NAMES,
    STOPPED_PHASES,
    TERMINAL_PHASE_NAMES,
    TERMINAL_PHASES,
    is_terminal,
    phase_name,
    phase_number,
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
from stigmer.core._values import from_value, jsonable, plain_value, to_value
from stigmer.core._worker_cli import WorkerCommand
from stigmer.core._yaml import ManifestError, dump_yaml, load_yaml_text

__all__ = [
    "API_VERSION",
    "APPLY_ORDER",
    "BACKENDS_GROUP",
    "CAPABILITY_RUN",
    "DEFAULT_TEMPORAL_ADDRESS",
    "EXECUTION",
    "KINDS",
    "KIND_PREFIXES",
    "KIND_TABLE",
    "LIMIT_SETTINGS",
    "MASK",
    "MIN_SECRET_LENGTH",
    "PHASE_NAMES",
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "RUNNABLE_KINDS",
    "RUNNERS_GROUP",
    "SCHEMA_KINDS",
    "SKILL_FILE",
    "SKILL_MAX_BYTES",
    "SKILL_MEDIA_TYPE",
    "STOPPED_PHASES",
    "TEMPORAL_ENV",
    "TERMINAL_PHASES",
    "TERMINAL_PHASE_NAMES",
    "AlreadyExists",
    "Backend",
    "CapabilityDenied",
    "Connection",
    "Context",
    "EventWriter",
    "FailedPrecondition",
    "InvalidArgument",
    "Kind",
    "Limits",
    "LoadedResource",
    "ManifestError",
    "NewEvent",
    "NotFound",
    "PackedSkill",
    "PermissionDenied",
    "PluginNotFound",
    "Principal",
    "RedactingFilter",
    "Redactor",
    "RunStopped",
    "Runner",
    "Settings",
    "StigmerError",
    "TemporalConnection",
    "Unauthenticated",
    "Unavailable",
    "WorkerCommand",
    "acting_as",
    "add_temporal_arguments",
    "applicable_kinds",
    "artifact_key",
    "capabilities_config",
    "check_event_limits",
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
    "is_terminal",
    "jsonable",
    "kind_info",
    "kind_of",
    "kind_spellings",
    "load_backend",
    "load_manifests",
    "load_plugin",
    "load_runner",
    "load_yaml_text",
    "lookup_kind",
    "manifest_schema",
    "message_to_manifest",
    "new_id",
    "open_private",
    "order_resources",
    "pack_skill",
    "parse_manifest",
    "phase_name",
    "phase_number",
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
    "to_value",
    "unwrap",
    "validate_manifest",
    "write_credentials",
]
