"""The context builder's blocks (integrations/blocks.py), counted in words here so that every
budget is easy to check by eye: the order, each block within its budget, what is cut first, and
all the blocks within the window's share."""

from __future__ import annotations

from datetime import UTC, datetime

from ai_gateway.integrations.blocks import build_blocks
from ai_gateway.integrations.config import BlockBudgets
from ai_gateway.integrations.contracts import (
    LearnerProfile,
    Memory,
    MemorySearchResponse,
    Project,
    ProjectContextResponse,
    Snippet,
)
from ai_gateway.integrations.sources import ContextResult


def words(text: str) -> int:
    return len(text.split())


WHEN = datetime(2025, 1, 1, tzinfo=UTC)
MEMORY = MemorySearchResponse(
    memories=(
        Memory(id="low", text="low " * 30, score=0.1, created_at=WHEN),
        Memory(id="high", text="asyncio cancellation matters", score=0.9, created_at=WHEN),
        Memory(id="mid", text="pytest fixtures for async code", score=0.5, created_at=WHEN),
    ),
    summary="Talked about task groups.",
)
PROJECT = ProjectContextResponse(
    project=Project(id="p", name="gateway", description="An AI gateway.", languages=("python",)),
    snippets=(
        Snippet(path="small.py", content="x = 1", score=0.2),
        Snippet(path="big.py", content="\n".join(f"line {n}" for n in range(40)), score=0.8),
    ),
)
PROFILE = LearnerProfile.model_validate(
    {"level": "beginner", "goals": ["learn asyncio"], "preferences": {"languages": ["python"]}}
)
EVERYTHING = ContextResult(memory=MEMORY, project=PROJECT, learning=PROFILE)


def test_the_blocks_come_in_order_each_within_its_budget() -> None:
    budgets = BlockBudgets(learning=40, memory=25, project=60)
    blocks = build_blocks(EVERYTHING, budgets, words, None)
    assert [b.source for b in blocks] == ["learning", "memory", "project"]
    for block, budget in zip(blocks, (40, 25, 60), strict=True):
        assert words(block.text) <= block.tokens <= budget


def test_memories_are_kept_most_relevant_first_and_what_does_not_fit_is_left_out() -> None:
    [block] = build_blocks(ContextResult(memory=MEMORY), BlockBudgets(memory=31), words, None)
    lines = block.text.splitlines()[1:]
    assert lines == [
        "- asyncio cancellation matters",
        "- pytest fixtures for async code",
        "Summary of recent conversations: Talked about task groups.",
    ]
    assert block.left_out == 1  # the long, least relevant memory


def test_a_snippet_too_big_to_fit_whole_is_cut_to_its_first_lines() -> None:
    [block] = build_blocks(ContextResult(project=PROJECT), BlockBudgets(project=45), words, None)
    assert "big.py:" in block.text
    assert "line 0" in block.text
    assert "line 39" not in block.text
    assert "more lines)" in block.text
    assert block.tokens <= 45


def test_a_snippet_whose_first_lines_do_not_fit_is_left_out() -> None:
    [block] = build_blocks(ContextResult(project=PROJECT), BlockBudgets(project=20), words, None)
    assert "big.py" not in block.text
    assert "small.py" in block.text
    assert block.left_out == 1


def test_all_blocks_together_stay_within_the_window_s_share() -> None:
    budgets = BlockBudgets(learning=1000, memory=1000, project=1000, window_share=0.5)
    blocks = build_blocks(EVERYTHING, budgets, words, window=100)
    assert sum(b.tokens for b in blocks) <= 50
    assert blocks[0].source == "learning"  # the blocks before are served first


def test_nothing_answered_is_no_block_and_a_zero_budget_turns_a_block_off() -> None:
    assert build_blocks(ContextResult(), BlockBudgets(), words, None) == []
    blocks = build_blocks(EVERYTHING, BlockBudgets(memory=0), words, None)
    assert [b.source for b in blocks] == ["learning", "project"]
