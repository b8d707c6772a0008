"""The context builder's blocks: what the sources answered, as text for the prompt, each block
within its token budget and all of them within a share of the model's context window.

The blocks come in a fixed order, after the request's own system text and before the
conversation: the learner's profile, the user's relevant memories, the project's context. Each
block's items are cut to fit its budget in the way that keeps the most useful part:

- learning: the profile's lines (level, goals, preferences); the lines that do not fit are left
  out from the end;
- memory: the memories, most relevant first, then the summary of recent conversations; an item
  that does not fit is left out and the next (smaller) one is tried;
- project: the project's name, description and languages, then its snippets, most relevant
  first; a snippet that does not fit whole is cut to its first lines that do, when at least
  `MIN_SNIPPET_LINES` of them fit, else left out.

A block with nothing left in it is not sent. Token counts come from the `count` function given
(the gateway's token counter), so the budgets hold for the count it makes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ai_gateway.integrations.config import BlockBudgets
from ai_gateway.integrations.contracts import (
    LearnerProfile,
    MemorySearchResponse,
    ProjectContextResponse,
    Snippet,
)
from ai_gateway.integrations.sources import ContextResult, SourceName

Count = Callable[[str], int]
MIN_SNIPPET_LINES = 3


@dataclass(frozen=True, slots=True)
class Block:
    source: SourceName
    text: str
    tokens: int
    left_out: int  # items left out, or cut to fit


def build_blocks(
    result: ContextResult, budgets: BlockBudgets, count: Count, window: int | None
) -> list[Block]:
    """The blocks for what the sources answered, in order; `window`: the model's context
    window in tokens (None: not known, only the budgets apply)."""
    room = int(window * budgets.window_share) if window is not None else None
    blocks: list[Block] = []
    order: tuple[tuple[SourceName, int], ...] = (
        ("learning", budgets.learning),
        ("memory", budgets.memory),
        ("project", budgets.project),
    )
    for source, budget in order:
        if room is not None:
            budget = min(budget, room)
        block = _block(source, result, budget, count)
        if block is not None:
            blocks.append(block)
            if room is not None:
                room -= block.tokens
    return blocks


def _block(source: SourceName, result: ContextResult, budget: int, count: Count) -> Block | None:
    if budget <= 0:
        return None
    if source == "learning" and result.learning is not None:
        return _learning(result.learning, budget, count)
    if source == "memory" and result.memory is not None:
        return _memory(result.memory, budget, count)
    if source == "project" and result.project is not None:
        return _project(result.project, budget, count)
    return None


class _Filler:
    """Lines added under a heading while they fit the budget."""

    def __init__(self, heading: str, budget: int, count: Count) -> None:
        self.lines = [heading]
        self.budget = budget
        self.used = count(heading)
        self.count = count
        self.items = 0
        self.left_out = 0

    def fits(self, text: str) -> bool:
        return self.used + self.count("\n" + text) <= self.budget

    def add(self, text: str) -> bool:
        """Add `text` when it fits (an item: counted as one, or as left out)."""
        if not self.fits(text):
            self.left_out += 1
            return False
        self.lines.append(text)
        self.used += self.count("\n" + text)
        self.items += 1
        return True

    def block(self, source: SourceName) -> Block | None:
        if not self.items or self.used > self.budget:
            return None
        return Block(source, "\n".join(self.lines), self.used, self.left_out)


def _learning(profile: LearnerProfile, budget: int, count: Count) -> Block | None:
    filler = _Filler("About the learner (from the Learning service):", budget, count)
    prefs = profile.preferences
    lines = [f"Level: {profile.level}"]
    if profile.goals:
        lines.append("Goals: " + "; ".join(profile.goals))
    wanted = [f"explanations: {prefs.explanation_style}"]
    if prefs.languages:
        wanted.append("languages: " + ", ".join(prefs.languages))
    wanted.append("code examples: " + ("yes" if prefs.code_examples else "no"))
    lines.append("Preferences: " + "; ".join(wanted))
    for n, line in enumerate(lines):
        if not filler.add(line):
            filler.left_out += len(lines) - n - 1
            break
    return filler.block("learning")


def _memory(memory: MemorySearchResponse, budget: int, count: Count) -> Block | None:
    filler = _Filler(
        "What this user's earlier sessions left (from the Memory service), most relevant first:",
        budget,
        count,
    )
    for item in sorted(memory.memories, key=lambda m: m.score, reverse=True):
        filler.add("- " + item.text.strip())
    if memory.summary:
        filler.add("Summary of recent conversations: " + memory.summary.strip())
    return filler.block("memory")


def _project(context: ProjectContextResponse, budget: int, count: Count) -> Block | None:
    project = context.project
    about = f"Project {project.name}"
    if project.description:
        about += f": {project.description.strip()}"
    if project.languages:
        about += f" (languages: {', '.join(project.languages)})"
    filler = _Filler(f"{about} (from the Project service).", budget, count)
    filler.items = 1  # the project's own line is worth sending alone
    if filler.used > budget:
        return None
    for snippet in sorted(context.snippets, key=lambda s: s.score, reverse=True):
        lines = snippet.content.splitlines()
        whole = _snippet(snippet, lines)
        if filler.fits(whole):
            filler.add(whole)
            continue
        kept = _longest_fit(filler, snippet, lines)
        if kept >= MIN_SNIPPET_LINES:
            filler.add(_snippet(snippet, lines[:kept], cut=len(lines) - kept))
        filler.left_out += 1  # cut, or left out
    return filler.block("project")


def _longest_fit(filler: _Filler, snippet: Snippet, lines: list[str]) -> int:
    """How many of the snippet's first lines fit (a binary search over the count)."""
    low, high = 0, len(lines)
    while low < high:
        mid = (low + high + 1) // 2
        if filler.fits(_snippet(snippet, lines[:mid], cut=len(lines) - mid)):
            low = mid
        else:
            high = mid - 1
    return low


def _snippet(snippet: Snippet, lines: list[str], cut: int = 0) -> str:
    where = snippet.path
    if snippet.start_line is not None:
        where += f" (from line {snippet.start_line})"
    tail = [f"... ({cut} more lines)"] if cut else []
    return "\n".join([f"{where}:", "```", *lines, *tail, "```"])
