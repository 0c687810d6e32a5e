import stigmer.core

EXPECTED = {
    "API_VERSION",
    "from_value",
    "plain_value",
    "RUNNABLE_KINDS",
    "find_target",
    "Connection",
    "connection_for",
    "credentials_path",
    "read_credentials",
    "write_credentials",
    "APPLY_ORDER",
    "order_resources",
    "BACKENDS_GROUP",
    "KINDS",
    "KIND_PREFIXES",
    "MASK",
    "RUNNERS_GROUP",
    "SCHEMA_KINDS",
    "SKILL_FILE",
    "SKILL_MAX_BYTES",
    "SKILL_MEDIA_TYPE",
    "PackedSkill",
    "artifact_key",
    "pack_skill",
    "manifest_schema",
    "validate_manifest",
    "AlreadyExists",
    "Backend",
    "Context",
    "FailedPrecondition",
    "InvalidArgument",
    "LoadedResource",
    "ManifestError",
    "NotFound",
    "PermissionDenied",
    "PluginNotFound",
    "Redactor",
    "Runner",
    "Settings",
    "StigmerError",
    "Unauthenticated",
    "Unavailable",
    "WorkerCommand",
    "default_redactor",
    "did_you_mean",
    "dump_manifests",
    "dump_yaml",
    "error_from_grpc_code",
    "kind_of",
    "load_backend",
    "load_manifests",
    "load_plugin",
    "load_runner",
    "load_yaml_text",
    "message_to_manifest",
    "new_id",
    "parse_manifest",
    "resource_from_message",
    "slugify",
    "unwrap",
}


def test_all_is_pinned() -> None:
    assert set(stigmer.core.__all__) == EXPECTED
    assert len(stigmer.core.__all__) == len(EXPECTED)


def test_every_exported_name_exists() -> None:
    for name in stigmer.core.__all__:
        assert getattr(stigmer.core, name) is not None, name
