"""Runs the READMEs: scripts/docs (run by scripts/test) calls this.

Console transcripts (README.md). Every fenced ```console block is run
against a redis-server with the module, started here on a free loopback
port (never 6379) and stopped at the end. Each `$ ` line runs in bash,
`redis-cli` pointed at that server (with `--no-raw`, so it prints what it
prints in a terminal); the lines up to
the next `$ ` are the reply it must print. In the expected lines:

  - `<- text` after two spaces or more is a note for the reader, ignored;
  - a line `...` stands for any number of lines (a reply left out);
  - `~` before a number (`(integer) ~194`) marks a value that moves with
    the clock: any integer matches. Before a quoted string
    (`~"4ae262fd1dd73a34"`) it marks a random one: any string matches, and
    the later commands of the block get the one received wherever they
    use the shown one.

Console transcripts of the FastAPI example (examples/fastapi/README.md)
run the same way against the example app itself: each block starts it
under uvicorn on a free loopback port, on the same (emptied) server, and
stops it after; `127.0.0.1:8000` in a command, where the README tells the
reader the app listens, is where it listens here. Header lines are
compared without the `\r` HTTP ends them with.

Prefer `AT unix_ms` in a transcript to masking: it makes a reply exact.
Every block starts from an empty server (FLUSHALL, no policies, default
settings) unless a `<!-- docs: continue -->` comment comes right before
it: then it continues the previous block's state.

Python snippets (README.md, clients/python/README.md,
examples/fastapi/README.md). Every ```python block is type-checked with
mypy (--check-untyped-defs, against the package's sources) and run with
the venv's python against the same server (6379, and redis-py's default
port, mean that server), each from an empty server. A snippet that
leaves a FastAPI `app` gets one request on each of its routes (inside
its lifespan), none may answer 5xx, and the module must have been called.
An HTML comment right before a block changes what is done with it:

  <!-- docs: run
  code around the snippet, its line `<snippet>` standing for the block
  (indented as that line is): the imports and objects a fragment takes
  from its context -->

  <!-- docs: check (why it can't run)
  the same, but the result is only type-checked, not run -->

  <!-- docs: skip (why) -->   not run, not checked: keep these few.

Exit status 1 when any block fails; each failure is shown with what was
expected and what came.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parents[2]
# tests/pyserver.py: the redis-server helper shared with the Python tests.
sys.path.insert(0, str(ROOT / "tests"))
from pyserver import App, Server  # noqa: E402

REDIS_CLI = shutil.which("redis-cli") or "redis-cli"
CONSOLE_DOCS = ["README.md", "examples/fastapi/README.md"]
# A README whose transcripts talk to an app (`$ curl ...`), not to Redis: the
# folder the app runs from.
APP_DOCS = {"examples/fastapi/README.md": ROOT / "examples/fastapi"}
# Where such a README says the app listens.
APP_ADDRESS = "127.0.0.1:8000"
PYTHON_DOCS = ["README.md", "clients/python/README.md", "examples/fastapi/README.md"]
WORK = ROOT / "tmp/docs"


# ---------------------------------------------------------------- markdown


@dataclass
class Block:
    path: str
    line: int  # of the opening fence, 1-based
    lang: str
    lines: list[str]
    marker: str | None = None  # "run", "check", "skip", "continue"
    marker_text: str = ""  # what follows the marker word

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


FENCE = re.compile(r"^(\s*)(```+)\s*([\w+-]*)")
MARKER = re.compile(r"<!--\s*docs:\s*(\w+)(.*?)-->", re.DOTALL)


def blocks(path: str) -> list[Block]:
    text = (ROOT / path).read_text()
    lines = text.split("\n")
    out: list[Block] = []
    i = 0
    pending: tuple[str, str] | None = None  # a marker waiting for its block
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("<!--") and "docs:" in line:
            j = i
            while "-->" not in lines[j]:
                j += 1
            m = MARKER.search("\n".join(lines[i : j + 1]))
            if m is None:
                raise SystemExit(f"{path}:{i + 1}: a docs marker that can't be read")
            pending = (m.group(1), m.group(2))
            i = j + 1
            continue
        m = FENCE.match(line)
        if m is None:
            if line.strip() and pending is not None:
                raise SystemExit(f"{path}:{i + 1}: a docs marker not right before a block")
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j].removeprefix(indent))
            j += 1
        b = Block(path, i + 1, lang, body)
        if pending is not None:
            b.marker, b.marker_text = pending
            pending = None
            if b.marker not in ("run", "check", "skip", "continue"):
                raise SystemExit(f"{b.where}: unknown docs marker {b.marker!r}")
            if b.marker in ("check", "skip") and not b.marker_text.strip().startswith("("):
                raise SystemExit(f"{b.where}: `docs: {b.marker}` needs a reason in parentheses")
        out.append(b)
        i = j + 1
    return out


# ---------------------------------------------------------------- the server


# ---------------------------------------------------------------- transcripts

NOTE = re.compile(r"\s{2,}<-\s.*$")
MASK = re.compile(r'~(-?\d+)|~"([^"]*)"')


@dataclass
class Step:
    command: str
    line: int
    expected: list[str] = field(default_factory=list)


def steps(b: Block) -> list[Step]:
    out: list[Step] = []
    for n, text in enumerate(b.lines, start=b.line + 1):
        if text.startswith("$ "):
            out.append(Step(text[2:], n))
        elif out:
            out[-1].expected.append(NOTE.sub("", text).rstrip())
        elif text.strip():
            raise ValueError(f"line {n}: a reply before any `$ ` command")
    for s in out:
        while s.expected and not s.expected[-1]:
            s.expected.pop()
    return out


def line_pattern(expected: str) -> tuple[re.Pattern[str], list[str]]:
    """A regex for one expected line, and the shown values of its masked
    strings, in order (their groups)."""
    parts, shown, pos = [], [], 0
    for m in MASK.finditer(expected):
        parts.append(re.escape(expected[pos : m.start()]))
        if m.group(1) is not None:
            parts.append(r"-?\d+")
        else:
            parts.append(r'"([^"]*)"')
            shown.append(m.group(2))
        pos = m.end()
    parts.append(re.escape(expected[pos:]))
    return re.compile("".join(parts)), shown


def match(expected: list[str], actual: list[str], bind: dict[str, str]) -> bool:
    """Matches lines, `...` standing for any number of them; fills `bind`
    with the values the masked strings took."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head.strip() == "...":
        return any(match(rest, actual[k:], bind) for k in range(len(actual) + 1))
    if not actual:
        return False
    pattern, shown = line_pattern(head)
    m = pattern.fullmatch(actual[0])
    if m is None:
        return False
    trial = dict(bind)
    trial.update(zip(shown, m.groups(), strict=True))
    if match(rest, actual[1:], trial):
        bind.update(trial)
        return True
    return False


def run_transcript(b: Block, server: Server, app: App | None = None) -> list[str]:
    """The failures of one console block, as messages (`app`: the app its
    commands talk to, where the README says APP_ADDRESS)."""
    try:
        todo = steps(b)
    except ValueError as e:
        return [f"{b.where}: {e}"]
    prelude = (
        f'redis-cli() {{ command {REDIS_CLI} -h 127.0.0.1 -p {server.port} --no-raw "$@"; }}\n'
    )
    bind: dict[str, str] = {}
    failures = []
    for s in todo:
        command = s.command
        for shown, got in bind.items():
            command = command.replace(shown, got)
        if app is not None:
            command = command.replace(APP_ADDRESS, app.address)
        r = subprocess.run(["bash", "-c", prelude + command], check=False, capture_output=True,
                           text=True, timeout=30, env={**os.environ, "LC_ALL": "C"})  # fmt: skip
        out = (r.stdout + r.stderr).replace("\r\n", "\n")
        actual = out.rstrip("\n").split("\n") if out else []
        if not match(s.expected, actual, bind):
            failures.append(
                f"{b.path}:{s.line}: $ {s.command}\n"
                + "  expected:\n"
                + "".join(f"    {e}\n" for e in s.expected)
                + "  got:\n"
                + "".join(f"    {a}\n" for a in actual)
            )
            break  # the later steps depend on this one
    return failures


# ---------------------------------------------------------------- python snippets

SNIPPET_LINE = re.compile(r"^([ \t]*)<snippet>[ \t]*$", re.MULTILINE)


def snippet_source(b: Block) -> str:
    code = textwrap.dedent("\n".join(b.lines)).strip("\n") + "\n"
    if b.marker not in ("run", "check"):
        return code
    template = b.marker_text
    if b.marker == "check":  # the reason first: "(why) template..."
        template = template.split(")", 1)[1]
    template = textwrap.dedent(template.strip("\n"))
    m = SNIPPET_LINE.search(template)
    if m is None:
        raise SystemExit(f"{b.where}: the docs marker's template has no `<snippet>` line")
    body = textwrap.indent(code, m.group(1))
    return template[: m.start()] + body.rstrip("\n") + template[m.end() :] + "\n"


def module_name(b: Block) -> str:
    stem = re.sub(r"\W", "_", b.path.removesuffix(".md")).lower()
    return f"{stem}_{b.line}"


def mypy(files: list[pathlib.Path]) -> str:
    """mypy's complaints about the snippets (empty when none)."""
    env = {**os.environ, "MYPYPATH": str(ROOT / "clients/python/src")}
    config = WORK / "mypy.ini"  # none of the repository's: the flags below
    config.write_text("[mypy]\n")
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-version", "3.11", "--check-untyped-defs",
         "--warn-unused-ignores", "--no-error-summary", "--show-error-codes",
         "--cache-dir", str(WORK / "mypy-cache"), "--config-file", str(config),
         *map(str, files)],
        check=False, capture_output=True, text=True, env=env, cwd=WORK / "snippets",
    )  # fmt: skip
    return r.stdout + r.stderr if r.returncode != 0 else ""


def run_snippet(path: pathlib.Path, server: Server) -> str:
    """What went wrong running one snippet (empty when nothing)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "clients/python/src"),
           "DOCS_REDIS_PORT": str(server.port)}  # fmt: skip
    r = subprocess.run(
        [sys.executable, str(pathlib.Path(__file__).with_name("snippet.py")), str(path)],
        check=False, capture_output=True, text=True, env=env, timeout=120,
        cwd=WORK / "snippets",
    )  # fmt: skip
    if r.returncode == 0:
        return ""
    lines = (r.stdout + r.stderr).rstrip().split("\n")
    return "\n".join(lines if len(lines) <= 30 else ["...", *lines[-30:]])


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("docs", nargs="*", help="only these READMEs (paths from the repository root)")
    ap.add_argument("-v", "--verbose", action="store_true", help="name every block")
    args = ap.parse_args()
    only = set(args.docs)
    started = time.monotonic()
    shutil.rmtree(WORK / "snippets", ignore_errors=True)
    (WORK / "snippets").mkdir(parents=True)
    failures: list[str] = []
    counts = {"transcripts": 0, "commands": 0, "run": 0, "checked": 0, "skipped": 0}

    with tempfile.TemporaryDirectory(prefix="docs-redis-") as tmp:
        try:
            server = Server(pathlib.Path(tmp))
        except RuntimeError as e:
            raise SystemExit(str(e)) from None
        try:
            for path in CONSOLE_DOCS:
                if only and path not in only:
                    continue
                for b in blocks(path):
                    if b.lang != "console":
                        continue
                    if b.marker == "skip":
                        counts["skipped"] += 1
                        continue
                    if b.marker != "continue":
                        server.reset()
                    counts["transcripts"] += 1
                    counts["commands"] += sum(line.startswith("$ ") for line in b.lines)
                    if path in APP_DOCS:
                        try:
                            app = App(
                                WORK,
                                server.url,
                                folder=APP_DOCS[path],
                                pythonpath=ROOT / "clients/python/src",
                            )
                        except RuntimeError as e:
                            failures.append(f"{b.where}: {e}")
                            continue
                        try:
                            failed = run_transcript(b, server, app)
                        finally:
                            app.stop()
                    else:
                        failed = run_transcript(b, server)
                    failures += failed
                    if args.verbose:
                        print(f"    {b.where} console: {'FAILED' if failed else 'ok'}")

            snippets: list[tuple[Block, pathlib.Path]] = []
            for path in PYTHON_DOCS:
                if only and path not in only:
                    continue
                for b in blocks(path):
                    if b.lang != "python":
                        continue
                    if b.marker == "skip":
                        counts["skipped"] += 1
                        continue
                    file = WORK / "snippets" / f"{module_name(b)}.py"
                    file.write_text(snippet_source(b))
                    snippets.append((b, file))
            if snippets:
                complaints = mypy([f for _, f in snippets])
                if complaints:
                    failures.append("mypy, on the Python snippets (files in tmp/docs/snippets):\n"
                                    + complaints)  # fmt: skip
            for b, file in snippets:
                if b.marker == "check":
                    counts["checked"] += 1
                    continue
                server.reset()
                counts["run"] += 1
                problem = run_snippet(file, server)
                if problem:
                    failures.append(f"{b.where}: the snippet ({file.relative_to(ROOT)}) failed:\n"
                                    + textwrap.indent(problem.rstrip(), "    "))  # fmt: skip
                if args.verbose:
                    print(f"    {b.where} python: {'FAILED' if problem else 'ok'}")
        finally:
            server.stop()

    took = time.monotonic() - started
    print(
        f"    {counts['transcripts']} transcripts ({counts['commands']} commands), "
        f"{counts['run']} Python snippets run and type-checked, {counts['checked']} only "
        f"type-checked, {counts['skipped']} blocks skipped, in {took:.1f} s"
    )
    for f in failures:
        print("\n" + f.rstrip(), file=sys.stderr)
    if failures:
        print(f"\nscripts/docs: {len(failures)} failure(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
