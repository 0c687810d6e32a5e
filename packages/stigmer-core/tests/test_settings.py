from pathlib import Path

import pytest
from stigmer.core import InvalidArgument, Settings


def test_defaults(tmp_path: Path) -> None:
    s = Settings.load({"HOME": str(tmp_path), "STIGMER_HOME": str(tmp_path / "h")})
    assert s.home == tmp_path / "h"
    assert s.current_context == "local"
    assert s.context.backend == "local"
    assert s.effective_database_url() == f"sqlite:///{tmp_path / 'h' / 'stigmer.db'}"


def test_config_file_and_environment_overrides(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "currentContext: team\n"
        "contexts:\n"
        "  - {name: team, endpoint: 'grpc://127.0.0.1:7234'}\n"
        "  - {name: other, backend: local, databaseUrl: 'sqlite:////tmp/x.db'}\n"
    )
    s = Settings.load({"STIGMER_HOME": str(tmp_path)})
    assert s.context.backend == "cloud"
    assert s.context.endpoint == "grpc://127.0.0.1:7234"
    s2 = Settings.load({"STIGMER_HOME": str(tmp_path), "STIGMER_CONTEXT": "other"})
    assert s2.effective_database_url() == "sqlite:////tmp/x.db"
    s3 = Settings.load(
        {"STIGMER_HOME": str(tmp_path), "STIGMER_CONTEXT": "other", "STIGMER_DATABASE_URL": "sqlite:///y.db"}
    )
    assert s3.effective_database_url() == "sqlite:///y.db"


def test_unknown_context_is_a_clear_error(tmp_path: Path) -> None:
    s = Settings.load({"STIGMER_HOME": str(tmp_path), "STIGMER_CONTEXT": "nope"})
    with pytest.raises(InvalidArgument, match="context 'nope' is not configured"):
        _ = s.context


@pytest.mark.parametrize("text", ["- just\n- a list\n", "contexts: [{endpoint: x}]\n", "a: [1\n"])
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(InvalidArgument, match=r"config\.yaml"):
        Settings.load({"STIGMER_HOME": str(tmp_path)})
