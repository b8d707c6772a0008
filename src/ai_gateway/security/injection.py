"""The prompt-injection heuristic: weighted phrases, flagged when their score reaches a threshold.

Each phrase has a weight; a text's score is the sum of the weights of the *distinct* phrases in it
(a phrase repeated counts once). With the default threshold of 1.0:

- a strong phrase alone is enough: "ignore all previous instructions", "disregard your system
  prompt", "you are now DAN", "reveal your system prompt", "pretend you have no restrictions",
  "act as an AI without any filters";
- a weak phrase alone is not: "ignore the previous instructions" (people correct themselves),
  "print the system prompt" (a developer debugging their own app), "jailbreak" (iOS), "act as a
  proxy without filters" (nginx). Two of them together are.

Ordinary developer text ("ignore the previous error and retry the build") matches no phrase at all.
Separators are bounded (`\\s{1,3}`), so a match is at most `INJECTION_MAX_LEN` characters long.
"""

from __future__ import annotations

from ai_gateway.security.detectors import InjectionDetector, Shape, edge_word

INJECTION_MAX_LEN = 200  # checked against the patterns' widths by the tests

# Every phrase contains one of these (lower case): a text without any skips the expressions.
TRIGGERS = (
    "instruction", "prompt", "rule", "direction", "guideline", "command", "system", "now",
    "restrict", "filter", "limit", "censorship", "programming", "guardrail", "safeguard", "polic",
    "jailbreak", "dan", "bound",
)  # fmt: skip

_EARLIER = r"(?:previous|prior|above|earlier|preceding|former)"
_ORDERS = r"(?:instructions?|prompts?|rules|directions|guidelines|commands)"
_LIMITS = r"(?:restrictions|filters|limits|limitations|rules|guidelines|censorship)"
_AI = r"(?:ai|assistant|chatbot|model|llm|gpt|dan|bot)"
_WORD = r"[\w'-]{1,16}"
_SPACE = r"\s{1,3}"
_REVEAL = ("reveal", "print", "show", "output", "repeat", "display", "leak", "dump")


def _phrase(first: tuple[str, ...], rest: str, weight: float, end: str = r"\b") -> Shape:
    """One of the `first` words, then `rest`, whose spaces match 1-3 whitespace characters.
    Lower case: the detector matches lower-cased text."""
    words = [
        edge_word(w.split(" ")[0]) + "".join(_SPACE + x for x in w.split(" ")[1:]) for w in first
    ]
    start = words[0] if len(words) == 1 else f"(?:{'|'.join(words)})"
    return Shape(start + rest.replace(" ", _SPACE) + end, weight=weight)


_PHRASES = (
    # strong: enough alone
    _phrase(
        ("ignore",),
        rf" (?:all|any|every) (?:of )?(?:the |your |my |these )?{_EARLIER} {_ORDERS}",
        1.0,
    ),
    _phrase(
        ("disregard",),
        rf" (?:all |any )?(?:of )?(?:the |your )?(?:{_EARLIER} |original |initial )?"
        r"system (?:prompt|message|instructions)",
        1.0,
    ),
    _phrase(("disregard",), rf" (?:all |any )?(?:of )?(?:the |your )?{_EARLIER} {_ORDERS}", 1.0),
    _phrase(
        ("you",),
        r" are now (?:dan|in (?:developer|god|jailbreak|unrestricted) mode|jailbroken"
        r"|unrestricted|unfiltered)",
        1.0,
    ),
    _phrase(
        (*_REVEAL, "tell me"),
        r" (?:me )?your (?:full |entire |exact |original |initial )?"
        r"(?:system prompt|system message|hidden (?:instructions|prompt)|secret instructions"
        r"|initial instructions)",
        1.0,
    ),
    _phrase(("pretend",), rf" (?:that )?you (?:have|had) no {_LIMITS}", 1.0),
    _phrase(
        ("act",),
        rf" as (?:an? |if you (?:were|are) )?(?:{_WORD} ){{0,3}}?{_AI}(?: {_WORD}){{0,3}}? "
        rf"(?:without|with no) (?:any )?{_LIMITS}",
        1.0,
    ),
    # weak: two are needed
    _phrase(("ignore",), rf" (?:the |your |my )?{_EARLIER} {_ORDERS}", 0.6),
    _phrase(("disregard",), r" (?:the |your )(?:instructions|rules|guidelines)", 0.6),
    _phrase(
        ("forget", "drop"),
        rf" (?:all|everything|any)(?: of)? (?:your |the )?(?:{_EARLIER} )?"
        r"(?:instructions|rules|guidelines|programming)",
        0.7,
    ),
    _phrase(
        ("bypass", "override", "circumvent", "ignore"),
        r" your (?:safety |content )?"
        r"(?:filters|guidelines|guardrails|restrictions|safeguards|policies|programming)",
        0.7,
    ),
    _phrase(_REVEAL, r" (?:me )?the (?:system prompt|hidden (?:instructions|prompt))", 0.5),
    _phrase(
        ("act",), rf" as (?:an? )?(?:{_WORD} ){{0,3}}?(?:without|with no) (?:any )?{_LIMITS}", 0.5
    ),
    _phrase(("jailbreak", "dan mode", "do anything now"), "", 0.4),
    _phrase(("new", "updated", "real"), r" (?:system )?instructions\s?:", 0.4, end=""),
    _phrase(("you",), r" (?:are|will) no longer (?:be )?(?:bound|restricted|limited)", 0.6),
)


def injection_detector() -> InjectionDetector:
    return InjectionDetector(
        "prompt_injection", _PHRASES, max_len=INJECTION_MAX_LEN, triggers=TRIGGERS, lowered=True
    )
