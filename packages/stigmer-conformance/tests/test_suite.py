"""The suite itself: helpers behave, and no test passes against a backend that does nothing."""

from __future__ import annotations

import textwrap

import pytest
from stigmer.conformance import RecordingBackend, expect_error, unique, unique_secret
from stigmer.core import InvalidArgument, NotFound
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import secret_pb2

pytest_plugins = ["pytester"]


def test_unique_names_differ_and_are_valid() -> None:
    names = {unique("agent") for _ in range(100)}
    assert len(names) == 100 and all(n.startswith("agent-") for n in names)
    secret = unique_secret("GH")
    assert secret.startswith("GH_") and secret.replace("_", "").isalnum()


async def test_expect_error_checks_type_and_message() -> None:
    async def raises(exc: Exception) -> None:
        raise exc

    got = await expect_error(NotFound, raises(NotFound("agent 'x' does not exist")), "'x'")
    assert isinstance(got, NotFound)
    with pytest.raises(AssertionError, match="expected InvalidArgument, got NotFound"):
        await expect_error(InvalidArgument, raises(NotFound("agent 'x' does not exist")))
    with pytest.raises(AssertionError, match="not useful"):
        await expect_error(NotFound, raises(NotFound("no")))
    with pytest.raises(AssertionError, match="expected 'zzz'"):
        await expect_error(NotFound, raises(NotFound("agent 'x' does not exist")), "zzz")

    async def returns() -> int:
        return 1

    with pytest.raises(AssertionError, match="the call returned int"):
        await expect_error(NotFound, returns())


async def test_recording_backend_finds_values_in_responses() -> None:
    class Inner:
        async def list_secrets(self, request: svc.ListSecretsRequest) -> svc.ListSecretsResponse:
            return svc.ListSecretsResponse(
                secrets=[secret_pb2.SecretMetadata(name="A", description="pw=s3cr3t!")]
            )

        async def get_execution_context(
            self, request: svc.GetExecutionContextRequest
        ) -> svc.ExecutionContext:
            return svc.ExecutionContext(secrets={"A": "s3cr3t!"})

    rec = RecordingBackend(Inner())  # type: ignore[arg-type]
    await rec.list_secrets(svc.ListSecretsRequest())
    await rec.get_execution_context(svc.GetExecutionContextRequest())
    assert rec.leaks("s3cr3t!") == ["list_secrets"]
    assert rec.leaks("other") == []


NULL_BACKEND_SHIM = textwrap.dedent(
    '''
    import pytest
    from stigmer.conformance import *  # noqa: F403
    from stigmer.core import Unavailable

    pytest_plugins = ["stigmer.conformance.plugin"]


    class NullBackend:
        """Refuses everything: every conformance test must fail against it."""

        def __getattr__(self, name):
            if name == "watch_execution":
                async def watch(*args, **kwargs):
                    raise Unavailable("this backend does nothing at all")
                    yield
                return watch

            async def method(*args, **kwargs):
                if name == "close":
                    return None
                raise Unavailable("this backend does nothing at all")
            return method


    @pytest.fixture
    def backend_factory():
        async def make():
            return NullBackend()
        return make
    '''
)


def test_no_test_passes_against_a_backend_that_does_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_null_backend=NULL_BACKEND_SHIM)
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 0, result.stdout.str()[-3000:]
    assert outcomes.get("skipped", 0) == 0
    assert outcomes.get("failed", 0) >= 80, outcomes


def test_missing_backend_fixture_is_a_clear_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_no_backend="from stigmer.conformance import TestArtifacts  # noqa: F401\n"
        'pytest_plugins = ["stigmer.conformance.plugin"]\n'
    )
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    assert "needs a `backend` fixture" in result.stdout.str()
    assert result.parseoutcomes().get("passed", 0) == 0
