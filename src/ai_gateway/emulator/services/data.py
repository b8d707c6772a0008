"""The service emulators' seeded data and their deterministic relevance rule.

Three learners (``u-alice``, ``u-bob``, ``u-carol``) and two projects (``p-gateway``, Alice's
and Bob's; ``p-todo``, Carol's). A text's score for a query is the share of the query's
distinct words that it contains (0 to 1, rounded to 4 places); ties are broken by id or path.
Every call builds fresh copies: apps never share data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def score(query: str, text: str) -> float:
    wanted = words(query)
    if not wanted:
        return 0.0
    return round(len(wanted & words(text)) / len(wanted), 4)


@dataclass
class MemoryItem:
    id: str
    text: str
    created_at: str


@dataclass
class MemoryData:
    memories: dict[str, list[MemoryItem]]
    summaries: dict[str, str]
    exchanges: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ProjectData:
    projects: dict[str, dict[str, Any]]  # id -> {id, name, description, languages, members}
    files: dict[str, dict[str, str]]  # project id -> path -> content


@dataclass
class LearningData:
    profiles: dict[str, dict[str, Any]]


_MEMORIES = {
    "u-alice": (
        ("m-a1", "Alice is learning Python async and asyncio tasks", "2025-01-10T09:00:00Z"),
        ("m-a2", "Alice asked how to write pytest fixtures", "2025-01-12T14:30:00Z"),
        ("m-a3", "Alice prefers short code examples", "2025-01-15T08:15:00Z"),
    ),
    "u-bob": (
        ("m-b1", "Bob maintains the gateway circuit breaker in Python", "2025-02-01T10:00:00Z"),
        ("m-b2", "Bob is studying Rust ownership and lifetimes", "2025-02-03T16:45:00Z"),
    ),
    "u-carol": (
        ("m-c1", "Carol builds a todo app in TypeScript with React", "2025-03-05T11:20:00Z"),
    ),
}


def memory_data() -> MemoryData:
    return MemoryData(
        memories={user: [MemoryItem(*item) for item in items] for user, items in _MEMORIES.items()},
        summaries={
            "u-alice": "Recent talk: asyncio task groups, then pytest fixtures for async code.",
            "u-bob": "Recent talk: half-open circuit breaker probes.",
        },
    )


_GATEWAY_FILES = {
    "src/gateway/breaker.py": (
        "class CircuitBreaker:\n"
        '    """Consecutive failures open the circuit for a cooldown."""\n'
        "    def allows(self) -> bool: ...\n"
    ),
    "src/gateway/router.py": (
        "async def route(request):\n"
        "    # pick a deployment, retry with backoff, fall back when exhausted\n"
        "    ...\n"
    ),
    "README.md": "# Gateway\nAn OpenAI-compatible LLM gateway with routing and caching.\n",
}
_TODO_FILES = {
    "src/App.tsx": "export function App() { return <TodoList items={items} />; }\n",
    "src/store.ts": "export const store = createStore(todoReducer);\n",
}


def project_data() -> ProjectData:
    return ProjectData(
        projects={
            "p-gateway": {
                "id": "p-gateway",
                "name": "LLM gateway",
                "description": "An OpenAI-compatible gateway with routing and caching.",
                "languages": ["python"],
                "members": ["u-alice", "u-bob"],
            },
            "p-todo": {
                "id": "p-todo",
                "name": "Todo app",
                "description": "A React todo list.",
                "languages": ["typescript"],
                "members": ["u-carol"],
            },
        },
        files={"p-gateway": dict(_GATEWAY_FILES), "p-todo": dict(_TODO_FILES)},
    )


def learning_data() -> LearningData:
    return LearningData(
        profiles={
            "u-alice": {
                "level": "beginner",
                "goals": ["write async Python", "test with pytest"],
                "preferences": {
                    "explanation_style": "detailed",
                    "languages": ["python"],
                    "code_examples": True,
                },
            },
            "u-bob": {
                "level": "advanced",
                "goals": ["learn Rust"],
                "preferences": {
                    "explanation_style": "concise",
                    "languages": ["python", "rust"],
                    "code_examples": False,
                },
            },
            "u-carol": {
                "level": "intermediate",
                "goals": ["ship the todo app"],
                "preferences": {
                    "explanation_style": "socratic",
                    "languages": ["typescript"],
                    "code_examples": True,
                },
            },
        }
    )
