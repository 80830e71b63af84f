"""The README's worked examples, run as written against a live `python -m server`.

The convention, which the README's examples section states in prose: between `<!-- examples -->`
and the next `<!-- ... -->` marker, every ```sh block is a step, run in order by bash under
`set -euo pipefail`; a variable a step assigns at the start of a line (`FILE_ID=$(...)`) is handed
on to the later steps. The fenced block right after a step is what the step prints, stdout and
stderr together; a step with nothing after it must print nothing. ```json output is compared as
JSON, any other line by line with runs of blanks collapsed (Go's protojson, inside buf, varies its
spacing on purpose). The ```python block is the SDK example, run with the SDK's own Python
(.venv-clients), since the SDK's generated modules clash with ours in one process.

Before comparing, the test server's addresses are written back as the README's defaults and the
values that change on every run (ids, timestamps, page tokens, link signatures) are masked on
both sides; everything else (names, labels, policies, status codes, exit codes) must match.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import signal
import subprocess
from typing import TYPE_CHECKING

import pytest
from grpc_health.v1 import health_pb2

from files_api.__main__ import parse_args
from tests import test_concurrency, test_crash, test_hostile, test_wire
from tests.support import CLIENTS_PYTHON, ROOT, VENV_BIN, server_process, wait_serving

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support import ServerProcess

README = ROOT / "README.md"
DEFAULT_GRPC = "127.0.0.1:50051"
DEFAULT_HTTP = "127.0.0.1:8080"
RUNNABLE = ("sh", "python")
STEP_TIMEOUT = 60

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_ASSIGNED = re.compile(r"^([A-Z][A-Z0-9_]*)=", re.MULTILINE)
_VOLATILE = [
    # Page tokens first: their base64 could hold something that looks like an id.
    (re.compile(r'("next(?:_page_token|PageToken)": )"[A-Za-z0-9_-]+"'), r'\1"<token>"'),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"), "<time>"),
    (re.compile(r"expires=\d+(\\u0026|&)signature=[0-9a-f]{64}"), r"expires=<t>\1signature=<s>"),
    # domain.new_file_id(): 20 lowercase letters and digits, starting with a letter.
    (re.compile(r"\b[a-z][a-z0-9]{19}\b"), "<id>"),
]


@dataclasses.dataclass(frozen=True)
class Step:
    lang: str
    code: str
    line: int
    output_lang: str | None
    output: str | None

    def where(self) -> str:
        return f"README.md line {self.line} ({self.lang} block)"


def examples_section(text: str) -> tuple[str, int]:
    """The examples section and the line number of its first line."""
    start = text.index("<!-- examples -->")
    end = text.index("<!--", start + 1)
    return text[start:end], text.count("\n", 0, start) + 1


def parse_steps(text: str) -> list[Step]:
    section, first_line = examples_section(text)
    fences = list(_FENCE.finditer(section))
    steps = []
    for i, fence in enumerate(fences):
        lang, code = fence.group(1), fence.group(2)
        if lang not in RUNNABLE:
            continue
        output = fences[i + 1] if i + 1 < len(fences) else None
        if output is not None and (
            output.group(1) in RUNNABLE or section[fence.end() : output.start()].strip()
        ):
            output = None
        steps.append(
            Step(
                lang=lang,
                code=code,
                line=first_line + section.count("\n", 0, fence.start()),
                output_lang=output.group(1) if output else None,
                output=output.group(2) if output else None,
            )
        )
    return steps


def _mask_volatile(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


# grpcio-health-checking has Health/List from 1.85 on, which needs protobuf 7; beside the SDK
# (protobuf 6) users get an older one, and `make test-lowest` runs on it. The README shows the
# pinned versions' listing; with an older package that one line is not there to compare.
_HEALTH_LIST = None if hasattr(health_pb2, "HealthListRequest") else "grpc.health.v1.Health/List"


def comparable(text: str, lang: str | None) -> object:
    """What must match between the README and a real run (see the module docstring)."""
    text = _mask_volatile(text)
    if lang == "json":
        return json.loads(text)
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return [line for line in lines if line != _HEALTH_LIST]


def _to_defaults(text: str, server: ServerProcess) -> str:
    for actual, default in (
        (server.grpc_address, DEFAULT_GRPC),
        (server.http_address, DEFAULT_HTTP),
    ):
        text = re.sub(re.escape(actual) + r"(?!\d)", default, text)
    return text


def _to_server(code: str, server: ServerProcess) -> str:
    return code.replace(DEFAULT_GRPC, server.grpc_address).replace(
        DEFAULT_HTTP, server.http_address
    )


class Runner:
    """Runs steps one by one in `workdir`, carrying assigned shell variables forward."""

    def __init__(self, server: ServerProcess, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir
        self.variables: dict[str, str] = {}
        self.env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    def run(self, step: Step) -> tuple[int, str]:
        code = _to_server(step.code, self.server)
        state: Path | None = None
        if step.lang == "python":
            if not CLIENTS_PYTHON.exists():
                raise RuntimeError(f"{CLIENTS_PYTHON} is missing: `make test` installs it")
            script = self.workdir / f"readme_line_{step.line}.py"
            script.write_text(code)
            command = [str(CLIENTS_PYTHON), str(script)]
        else:
            state = self.workdir / ".readme-state"
            state.write_text("")
            save = "".join(
                f'printf "%s=%s\\n" {name} "${name}" >> {shlex.quote(str(state))}\n'
                for name in dict.fromkeys(_ASSIGNED.findall(code))
            )
            command = ["bash", "-c", f"set -euo pipefail\n{code}\n{save}"]
        result = subprocess.run(
            command,
            cwd=self.workdir,
            env={**self.env, **self.variables},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        if state is not None and result.returncode == 0:
            for line in state.read_text().splitlines():
                name, _, value = line.partition("=")
                self.variables[name] = value
        return result.returncode, _to_defaults(result.stdout, self.server)


@pytest.fixture(scope="module")
def steps() -> list[Step]:
    return parse_steps(README.read_text())


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with server_process("--store", f"sqlite:///{tmp_path / 'files.db'}") as server:
        yield server


def test_readme_examples_print_what_the_readme_says(
    steps: list[Step], fresh_server: ServerProcess, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    runner = Runner(fresh_server, workdir)
    for step in steps:
        status, printed = runner.run(step)
        assert status == 0, f"{step.where()} exited {status}:\n{printed}"
        if step.output is None:
            assert printed == "", f"{step.where()} should print nothing, printed:\n{printed}"
        else:
            expected = comparable(step.output, step.output_lang)
            assert comparable(printed, step.output_lang) == expected, (
                f"{step.where()} printed:\n{printed}"
            )


RPCS = ("Create", "Get", "GetUrl", "Update", "Delete", "List")
TOOLS = {
    "grpcurl": re.compile(r"^grpcurl -plaintext\b", re.MULTILINE),
    "buf curl": re.compile(r"\bbuf curl --protocol grpc --http2-prior-knowledge\b"),
}


@pytest.mark.parametrize("rpc", [*RPCS, "grpc.health.v1.Health/Check"])
@pytest.mark.parametrize("tool", TOOLS)
def test_readme_shows_every_rpc_with_both_tools(steps: list[Step], tool: str, rpc: str) -> None:
    method = rpc if "/" in rpc else f"yandex.cloud.ai.files.v1.FileService/{rpc}"
    shown = [
        step
        for step in steps
        if step.lang == "sh" and TOOLS[tool].search(step.code) and method in step.code
    ]
    assert shown, f"the README has no {tool} example of {method}"
    assert any(step.output for step in shown), f"no {tool} example of {method} shows its output"


def test_readme_update_examples_cover_the_mask_forms(steps: list[Step]) -> None:
    code = "\n".join(step.code for step in steps)
    assert '"paths": ["name", "labels.`team.name`"]' in code
    assert '"updateMask": "description,labels"' in code
    assert "upload_bytes" in code and "download_as_bytes" in code
    assert ".update(" in code and ".list(" in code


def test_the_parser_pairs_each_step_with_the_block_right_after_it() -> None:
    text = (
        "intro\n<!-- examples -->\n"
        "```sh\necho a\n```\n```json\n{}\n```\n"
        "text between\n```sh\nA=1\n```\nmore text\n```text\nnot an output\n```\n"
        "```python\nprint(1)\n```\n\n```text\n1\n```\n"
        "<!-- rules -->\n```sh\nnot an example\n```\n"
    )
    assert [(s.lang, s.code, s.line, s.output_lang, s.output) for s in parse_steps(text)] == [
        ("sh", "echo a\n", 3, "json", "{}\n"),
        ("sh", "A=1\n", 10, None, None),
        ("python", "print(1)\n", 17, "text", "1\n"),
    ]


@pytest.mark.parametrize(
    ("printed", "lang", "expected"),
    [
        ('{"id": "abcdefghij0123456789"}', "json", {"id": "<id>"}),
        ('{"created_at": "2026-01-02T03:04:05.123456789Z"}', "json", {"created_at": "<time>"}),
        ('{"nextPageToken": "WyJi-_x"}', "json", {"nextPageToken": "<token>"}),
        (
            '{"url": "http://h/f?expires=17\\u0026signature=' + "0" * 64 + '"}',
            "json",
            {"url": "http://h/f?expires=<t>&signature=<s>"},
        ),
        ("{\n  \n}", "json", {}),
        ("  Code:   NotFound \n\n exit 69", "text", ["Code: NotFound", "exit 69"]),
        # Not masked: names, shorter or longer tokens, and ids with capitals are real content.
        ('{"name": "abcdefghij012345678"}', "json", {"name": "abcdefghij012345678"}),
        ('{"id": "Abcdefghij0123456789"}', "json", {"id": "Abcdefghij0123456789"}),
    ],
)
def test_comparable_masks_only_what_changes_between_runs(
    printed: str, lang: str, expected: object
) -> None:
    assert comparable(printed, lang) == expected


_MAKE_RUN = re.compile(r'make run ARGS="([^"]*)"')


def test_every_make_run_in_the_readme_takes_flags_the_server_has() -> None:
    """The set-up commands outside the run examples (replicas, keys) are checked by the server's
    own parser, so a renamed or dropped flag cannot leave a recipe behind that fails to start."""
    text = README.read_text().replace("\\\n", " ")
    commands = [shlex.split(args) for args in _MAKE_RUN.findall(text)]
    assert len(commands) >= 5, "the README's make run commands were not found"
    for argv in commands:
        try:
            parse_args(argv)
        except SystemExit:
            pytest.fail(f"the README's `make run ARGS={shlex.join(argv)!r}` does not parse")


def test_the_replica_recipe_gives_links_one_public_address_and_each_replica_its_ports() -> None:
    section = README.read_text().split("## Running several replicas")[1].split("\n## ")[0]
    runs = [
        parse_args(shlex.split(args)) for args in _MAKE_RUN.findall(section.replace("\\\n", " "))
    ]
    behind_balancer, *one_machine = runs
    assert behind_balancer.store.startswith("postgresql://")
    assert behind_balancer.public_http_url and behind_balancer.auth_keys
    assert len(one_machine) == 2
    assert {r.store for r in one_machine} == {one_machine[0].store}
    assert len({(r.grpc_listen, r.http_listen) for r in one_machine}) == 2


def test_make_run_starts_the_server_the_readme_describes(tmp_path: Path) -> None:
    """The README's first command, as a user types it (with free ports and a scratch store)."""
    store = f"sqlite:///{tmp_path / 'files.db'}"
    command = ["make", "--no-print-directory", "run"]
    command.append(f"ARGS=--grpc-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --store {store}")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # make does not pass SIGINT on: stop the whole group
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            listening = re.search(r"serving gRPC on (\S+:\d+) .*, store (\S+)", line)
            if listening:
                break
        else:
            pytest.fail(f"make run exited {process.wait()} without serving")
        assert listening[2] == store
        wait_serving(listening[1])
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)  # make ends by its own SIGINT once the server has stopped
        process.stdout.close()
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # nothing of the group is left running
    assert (tmp_path / "files.db").exists()


def test_the_reliability_figures_are_the_tests_own() -> None:
    """The "Reliability" section quotes the tests' own settings, so the figures a cautious user
    reads cannot drift from what `make test` runs."""
    section = README.read_text().split("\n## Reliability\n")[1].split("\n## ")[0]
    low, high = test_crash.KILL_AFTER
    clients, updates = test_concurrency.CLIENTS, test_concurrency.UPDATES_PER_CLIENT
    payloads = sum(len(test_wire.random_payloads(method)) for method in test_wire.REQUESTS)
    shortest, longest = test_wire.TIMEOUTS[0], test_wire.TIMEOUTS[-1]
    figures = [
        f"{len(test_crash.Writers.KINDS)} writer threads",
        f"{test_crash.ROUNDS['sqlite']} kill points on SQLite and"
        f" {test_crash.ROUNDS['postgres']} on PostgreSQL",
        f"each after {low} to {high} more acknowledged writes",
        f"{clients} clients \N{MULTIPLICATION SIGN} {updates} Updates ({clients * updates})",
        f"{test_concurrency.JUMPS} rounds and {test_concurrency.BOUNDARY_ROUNDS} races",
        f"{test_hostile.EXAMPLES} generated examples per property per backend",
        f"{payloads} random payloads",
        f"{len(test_wire.BIG) // test_wire.MIB} MiB Creates with deadlines from"
        f" {shortest * 1000:g} ms to {longest:g} s",
    ]
    missing = [figure for figure in figures if figure not in section]
    assert not missing, f"the Reliability section does not say: {missing}"
