"""Every task type of the workflow runner has a builder, and what they build is a valid document."""

from __future__ import annotations

import pytest
from stigmer.runner.workflow import TASK_KINDS, WorkflowValidationError, load_workflow
from stigmer.sdk import (
    Agent,
    Call,
    CallAgent,
    CallGrpc,
    CallHttp,
    CallOpenApi,
    Case,
    Catch,
    Do,
    Emit,
    Environment,
    EnvVar,
    For,
    Fork,
    Listen,
    McpServer,
    Raise,
    Retry,
    RunScript,
    RunShell,
    RunWorkflow,
    Set,
    Skill,
    Switch,
    Try,
    Wait,
    Workflow,
    expr,
    secret,
)


def everything() -> Workflow:
    child = Workflow("child", namespace="demo", version="0.1.0", do={"a": Set({"x": 1})})
    return Workflow(
        "everything",
        namespace="demo",
        secrets=["API_TOKEN"],
        use={
            "functions": {"greet": {"set": {"hi": "${ .name }"}}},
            "errors": {"notFound": {"type": "https://example.com/not-found", "status": 404}},
        },
        timeout={"minutes": 5},
        output_as="${ . }",
        do=[
            ("init", Set({"items": [1, 2, 3]}, export_as="${ {start: .} }")),
            (
                "route",
                Switch(
                    Case("small", when="${ (.items | length) < 5 }", then="loop"), Case("other", then="end")
                ),
            ),
            (
                "loop",
                For(
                    ".items",
                    {"double": Set("${ {v: ($item * 2)} }")},
                    each="item",
                    at="i",
                    while_="${ true }",
                ),
            ),
            ("parallel", Fork({"a": Set({"a": 1}), "b": Wait(milliseconds=1)}, compete=True)),
            (
                "guarded",
                Try(
                    {"fetch": CallHttp("get", "http://127.0.0.1:1/x", output="response")},
                    Catch(
                        errors={"status": 503},
                        as_="err",
                        when="${ $err.status == 503 }",
                        retry=Retry(
                            delay="PT0.1S",
                            backoff="linear",
                            limit_attempts=2,
                            limit_duration={"seconds": 5},
                            jitter=({"milliseconds": 1}, {"milliseconds": 5}),
                        ),
                        do={"fallback": Set({"ok": False})},
                    ),
                ),
            ),
            ("pause", Wait("PT0.01S", if_="${ false }")),
            ("hear", Listen(any=[{"type": "com.example.a"}, {"type": "com.example.b"}], until="${ true }")),
            ("hearOne", Listen(one={"type": "com.example.c"}, read="data")),
            ("hearAll", Listen(all=[{"type": "com.example.d"}])),
            ("tell", Emit("com.example.done", source="stigmer.test", data={"n": 1})),
            (
                "secured",
                CallHttp(
                    "post",
                    "http://127.0.0.1:1/y",
                    body={"a": 1},
                    headers={"X": "1"},
                    query={"q": "1"},
                    authentication={"bearer": {"token": secret("API_TOKEN")}},
                ),
            ),
            ("openapi", CallOpenApi("http://127.0.0.1:1/openapi.json", "getPet", parameters={"id": 1})),
            (
                "grpc",
                CallGrpc(
                    "file:///greeter.proto",
                    "Greeter",
                    "SayHello",
                    host="127.0.0.1",
                    port=5011,
                    arguments={"name": "x"},
                ),
            ),
            ("ask", CallAgent("helper", "${ .question }", session="s1")),
            ("fn", Call("greet", {"name": "x"})),
            ("sh", RunShell("echo hi", environment={"A": "1"}, return_="all")),
            ("py", RunScript("print(1)", language="python", arguments=["1"])),
            ("sub", RunWorkflow(child, input={"x": 1})),
            ("nested", Do({"inner": Set({"done": True})}, timeout="PT1M")),
            ("fail", Raise(type="https://example.com/boom", status=500, title="Boom", detail="${ .why }")),
            ("failNamed", Raise("notFound")),
        ],
    )


def test_a_workflow_using_every_task_type_is_valid_for_the_runner() -> None:
    spec = everything().spec()
    workflow = load_workflow(spec)
    kinds: set[str] = set()
    for item in spec["do"]:
        [(_name, task)] = item.items()
        kinds.update(k for k in TASK_KINDS if k in task)
    assert kinds == set(TASK_KINDS)
    assert workflow.declared_secrets == ("API_TOKEN",)
    everything().to_message()  # and a valid manifest


def test_the_validator_would_notice_a_broken_document() -> None:
    spec = everything().spec()
    spec["do"].append({"bad": {"wait": {"fortnights": 1}, "then": "nowhere"}})
    with pytest.raises(WorkflowValidationError):
        load_workflow(spec)


def test_task_shapes_are_those_of_the_dsl() -> None:
    assert Listen(one={"type": "t"}).to_dict() == {"listen": {"to": {"one": {"with": {"type": "t"}}}}}
    assert Emit("t", data=1).to_dict() == {"emit": {"event": {"with": {"type": "t", "data": 1}}}}
    assert RunShell("ls", await_=False).to_dict() == {"run": {"shell": {"command": "ls"}, "await": False}}
    assert Raise("e").to_dict() == {"raise": {"error": "e"}}
    assert Wait(seconds=2).to_dict() == {"wait": {"seconds": 2}}
    assert Set({"a": 1}, then="end", if_=".x", input_from=".in").to_dict() == {
        "if": ".x",
        "input": {"from": ".in"},
        "set": {"a": 1},
        "then": "end",
    }
    assert CallHttp("get", "http://x", authentication="basicAuth").to_dict()["with"]["endpoint"] == {
        "uri": "http://x",
        "authentication": "basicAuth",
    }
    assert RunWorkflow("w", namespace="n", version="1").to_dict() == {
        "run": {"workflow": {"namespace": "n", "name": "w", "version": "1"}}
    }
    assert Try({"a": Set({})}, Catch(retry="default")).to_dict()["catch"] == {"retry": "default"}


def test_workflow_add_chains_and_raw_dict_tasks_are_accepted() -> None:
    wf = Workflow("w").add("a", Set({"x": 1})).add("b", {"set": {"y": 2}})
    assert wf.spec()["do"] == [{"a": {"set": {"x": 1}}}, {"b": {"set": {"y": 2}}}]
    assert wf.spec()["document"] == {"dsl": "1.0.3", "namespace": "default", "name": "w", "version": "1.0.0"}


@pytest.mark.parametrize(
    "make",
    [
        lambda: McpServer("m"),
        lambda: McpServer("m", command="x", url="http://x"),
        lambda: Raise(),
        lambda: Wait(),
        lambda: Listen(),
        lambda: Listen(one={}, any=[{}]),
        lambda: RunScript(),
        lambda: RunWorkflow("w"),
        lambda: Retry(backoff="quadratic"),
        lambda: Agent("a", model="gpt-4o"),
        lambda: Workflow("").spec(),
        lambda: Workflow("empty").spec(),
        lambda: secret("not a name"),
    ],
)
def test_wrong_arguments_say_what_to_give(make: object) -> None:
    with pytest.raises(ValueError) as info:
        make()  # type: ignore[operator]
    assert str(info.value)


def test_a_task_list_must_be_pairs() -> None:
    with pytest.raises(TypeError, match="pairs"):
        Do([Set({})])  # type: ignore[list-item]


def test_expression_helpers() -> None:
    assert secret("GH_TOKEN") == "${ $secrets.GH_TOKEN }"
    assert expr(".a + 1") == "${ .a + 1 }"
    assert expr("${ .a }") == "${ .a }"


def test_resource_builders_render_manifests_and_yaml() -> None:
    env = Environment("prod", variables={"REGION": "eu"}, secrets=["K"], description="d")
    agent = Agent(
        "a",
        model={"provider": "openai", "name": "m", "baseUrl": "http://x/v1", "params": {"temperature": 0}},
        environments=[env],
        secrets=["S"],
        env=["PLAIN", EnvVar("TOKEN", secret=True, required=True)],
        annotations={"owner": "me"},
    )
    manifest = agent.to_manifest()
    assert manifest["metadata"] == {"name": "a", "annotations": {"owner": "me"}}
    assert manifest["spec"]["env"] == [{"name": "PLAIN"}, {"name": "TOKEN", "required": True, "secret": True}]
    assert "baseUrl: http://x/v1" in agent.to_yaml()
    http = McpServer(
        "h", url="http://x/mcp", headers={"Authorization": secret("T")}, timeout_seconds=5, secrets=["T"]
    )
    assert http.to_message().spec.http.timeout_seconds == 5  # type: ignore[attr-defined]
    inline = Skill("s", content="# Inline skill")
    assert inline.to_message().spec.content == "# Inline skill"  # type: ignore[attr-defined]
    assert (
        Environment("prod") != env
        and Environment("prod", variables={"REGION": "eu"}, secrets=["K"], description="d") == env
    )


def test_the_code_generator_has_a_builder_for_every_task_kind() -> None:
    from stigmer.sdk.authoring._codegen_tasks import _BUILDERS

    assert set(_BUILDERS) == set(TASK_KINDS)
