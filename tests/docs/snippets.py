"""The snippets of README.md and docs/*.md that a user would run, extracted as the documentation shows them.

- Every fenced ```python block is one snippet, run as a script.
- In ```bash (or sh, shell) blocks, every command line that calls `cliplit`, `python -m cliplit`,
  `python app.py` or `accelerate launch` (backslash continuations joined) is a snippet; the commands
  of one block run in order in one folder. In a chain `a && b`, install steps (`pip install ...`) are
  left out: the test environment already has what they install.
- A comment `# doc-test: skip <reason>` on a block's first line skips the block, at the end of a
  command line that command, and `# doc-test: with-app` on a python block's first line runs it while
  `python app.py` serves on its default port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SKIP_MARKER = "doc-test: skip"
WITH_APP_MARKER = "doc-test: with-app"
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
FENCE = re.compile(r"^```(?P<language>[\w+-]*)[^\n]*\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)
ENVIRONMENT_ASSIGNMENT = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*")
RUN_PREFIXES = ("cliplit ", "python -m cliplit", "python app.py", "accelerate launch ")
INSTALL_PREFIXES = ("pip install", "python -m pip install")


@dataclass
class Snippet:
    """One runnable piece of documentation: a python block, or the runnable commands of one shell block."""

    source: Path
    line: int  # where its block starts (1-based)
    language: str  # "python" or "shell"
    commands: list[str] = field(default_factory=list)  # the python block's text, or the shell commands in order
    skip_reason: str | None = None
    with_app: bool = False

    @property
    def name(self) -> str:
        return f"{self.source.name}:{self.line}"


def _marker_reason(text: str) -> str | None:
    index = text.find(SKIP_MARKER)
    if index < 0:
        return None
    return text[index + len(SKIP_MARKER):].strip(" :-") or "marked as not runnable here"


def shell_commands(body: str) -> list[tuple[str, str | None]]:
    """The runnable commands of a shell block with, for each, the reason it is skipped (or None)."""
    joined = re.sub(r"\\\n\s*", " ", body)
    commands = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        reason = _marker_reason(line)
        parts = [part.strip() for part in line.split("&&")]
        runnable = [part for part in parts if not part.startswith(INSTALL_PREFIXES)]
        command = " && ".join(runnable)
        bare = ENVIRONMENT_ASSIGNMENT.sub("", command)
        if any(bare.startswith(prefix) or f"&& {prefix}" in bare for prefix in RUN_PREFIXES):
            commands.append((command, reason))
    return commands


def extract(path: Path) -> list[Snippet]:
    """Every snippet of one Markdown file, in order."""
    text = path.read_text()
    snippets = []
    for match in FENCE.finditer(text):
        language, body = match["language"].lower(), match["body"]
        line = text.count("\n", 0, match.start()) + 1
        first = body.splitlines()[0] if body.strip() else ""
        block_reason = _marker_reason(first) if first.lstrip().startswith("#") else None
        if language == "python":
            snippets.append(Snippet(path, line, "python", [body], block_reason, WITH_APP_MARKER in first))
        elif language in SHELL_LANGUAGES:
            for command, reason in shell_commands(body):
                snippets.append(Snippet(path, line, "shell", [command], block_reason or reason))
    return _group_shell_blocks(snippets)


def _group_shell_blocks(snippets: list[Snippet]) -> list[Snippet]:
    """The runnable commands of one shell block become one snippet (they may build on each other); a
    skipped command becomes its own skipped snippet."""
    grouped: list[Snippet] = []
    for snippet in snippets:
        previous = grouped[-1] if grouped else None
        if (snippet.language == "shell" and snippet.skip_reason is None and previous is not None
                and previous.language == "shell" and previous.skip_reason is None and previous.line == snippet.line):
            previous.commands += snippet.commands
        else:
            grouped.append(snippet)
    return grouped


def unlabelled_command_blocks(path: Path) -> list[int]:
    """Lines of fenced blocks without a language that hold a runnable command: they would be left out
    silently, so the test refuses them (label them ```bash, or ```text for a synopsis)."""
    text = path.read_text()
    return [text.count("\n", 0, match.start()) + 1 for match in FENCE.finditer(text)
            if not match["language"] and shell_commands(match["body"])]


def starts_the_app(command: str) -> bool:
    """Whether a shell command starts the demo app (which serves until it is stopped)."""
    return ENVIRONMENT_ASSIGNMENT.sub("", command).startswith("python app.py")


def documentation_files(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


__all__ = ["Snippet", "documentation_files", "extract", "shell_commands", "starts_the_app", "unlabelled_command_blocks"]
