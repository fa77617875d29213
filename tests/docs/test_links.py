"""The repository stands on its own: every Markdown link resolves inside it, path-like code spans
in the docs name files that exist, and no tracked text points outside the repository (another
folder of the machine, documents that are not in the repository) or cites work-item numbers."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

# [text](target) and [label]: target (reference definitions); images too
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s|$)", re.MULTILINE)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
REPO_FOLDERS = ("service/", "tests/", "docs/", "scripts/", "bench/", "deploy/", "schemas/", "testkit/")

# Text that points outside the repository. Pieces are joined so that this file does not match itself.
# the words that, followed by a number, cite a work item
WORK_ITEM_WORDS = ("issue", "task", "work[- ]item", "ticket")

FORBIDDEN = [
    ("a sibling folder of the repository", re.compile(r"\.\./" + "shared")),
    ("an absolute machine path", re.compile(r"(?<![\w.])/(?:" + "work|home|Users|root" + r")/")),
    (
        "a design document that is not in the repository",
        re.compile(r"\b(?:" + "DESIGN" + r"|faststream-eos|amili-arm-api|kafka-local|tools-verified)\.md\b"),
    ),
    (
        "a work-item number",
        re.compile(r"(?i)\b(?:" + "|".join(WORK_ITEM_WORDS) + r")s?\s*(?:#|no\.?\s*)?\d+\b"),
    ),
]
SKIPPED_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".ico", ".lock", ".jar", ".gz", ".tgz", ".zip"}


@cache
def tracked_files() -> tuple[str, ...]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return tuple(sorted(p for p in out.stdout.splitlines() if (ROOT / p).is_file()))


def markdown_files() -> list[str]:
    return [p for p in tracked_files() if p.endswith(".md")]


def text_files() -> list[str]:
    return [p for p in tracked_files() if Path(p).suffix not in SKIPPED_SUFFIXES and p != THIS]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {github_slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.MULTILINE)}


def broken_links(md: str) -> list[str]:
    source = ROOT / md
    text = FENCE.sub("", source.read_text(encoding="utf-8"))
    targets = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    problems = []
    for target in targets:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (source.parent / path_part).resolve() if path_part else source.resolve()
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no heading #{anchor}")
    return problems


def missing_code_paths(md: str) -> list[str]:
    """Code spans that name a repository path (`service/…`, `docs/…`) that does not exist."""
    text = FENCE.sub("", (ROOT / md).read_text(encoding="utf-8"))
    missing = []
    for span in CODE_SPAN.findall(text):
        candidate = span.split("::")[0].rstrip(".,:")
        if not candidate.startswith(REPO_FOLDERS) or re.search(r"[\s*<>{}|…$]", candidate):
            continue
        if not (ROOT / candidate).exists():
            missing.append(span)
    return missing


def test_there_are_documents_to_check() -> None:
    assert {"README.md", "docs/architecture.md", "docs/amili-api.md", "tests/README.md"} <= set(
        markdown_files()
    )


@pytest.mark.parametrize("md", markdown_files())
def test_every_markdown_link_resolves_inside_the_repository(md: str) -> None:
    assert broken_links(md) == []


@pytest.mark.parametrize("md", markdown_files())
def test_paths_named_in_the_docs_exist(md: str) -> None:
    assert missing_code_paths(md) == []


def test_no_text_points_outside_the_repository_or_cites_work_items() -> None:
    found = []
    for name in text_files():
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in FORBIDDEN:
                if pattern.search(line):
                    found.append(f"{name}:{number}: {what}: {line.strip()[:120]}")
    assert found == []


def test_the_checks_catch_what_they_name(tmp_path: Path) -> None:
    """The patterns and the link check are not vacuous."""
    samples = {
        "a sibling folder of the repository": "see ../" + "shared/x",
        "an absolute machine path": "cp /" + "work/main/.cache/x .",
        "a design document that is not in the repository": "as " + "DESIGN.md says",
    }
    for what, pattern in FORBIDDEN:
        if what == "a work-item number":  # every word the pattern names, followed by a number
            for word in WORK_ITEM_WORDS:
                for form in (f"{word} {7}", f"{word} #{7}", f"{word}s no. {7}"):
                    assert pattern.search(f"done in {form.replace('[- ]', ' ')}"), form
            continue
        assert pattern.search(samples[what]), what
    assert not any(
        p.search("runs in /tmp/x, an asyncio task, see docs/architecture.md") for _, p in FORBIDDEN
    )
    assert github_slug("Choices where the docs are silent") == "choices-where-the-docs-are-silent"
    assert github_slug("6. Exactly-once: the recipe") == "6-exactly-once-the-recipe"
