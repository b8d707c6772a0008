from __future__ import annotations

import re._parser as sre_parse  # the widths of the built-in expressions (test only)
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ai_gateway.security.credentials import secret_detector
from ai_gateway.security.detectors import (
    Detector,
    PatternDetector,
    bounded_finditer,
    deny_list_detector,
    regex_detector,
)
from ai_gateway.security.injection import INJECTION_MAX_LEN, injection_detector
from ai_gateway.security.patterns import PatternError
from ai_gateway.security.pii import (
    card_detector,
    email_detector,
    iban_detector,
    iban_ok,
    luhn_ok,
    phone_detector,
)

# Test data: well-known public test numbers and obviously fake credentials.
VISA = "4111 1111 1111 1111"
MASTERCARD = "5500-0000-0000-0004"
AMEX = "378282246310005"
IBAN_DE = "DE89 3704 0044 0532 0130 00"
IBAN_GB = "GB82WEST12345698765432"
OPENAI_KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
ANTHROPIC_KEY = "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-AbCdEf_AA"
GOOGLE_KEY = "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
SLACK_TOKEN = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
    "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n"
    "-----END RSA PRIVATE KEY-----"
)


def spans(detector: Detector, text: str) -> list[str]:
    return [text[h.start : h.end] for h in detector.scan(text).hits]


# --- validation ---------------------------------------------------------------------------------


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112")


def test_iban_checksum_and_length() -> None:
    assert iban_ok("DE89370400440532013000")
    assert iban_ok("GB82WEST12345698765432")
    assert not iban_ok("DE89370400440532013001")  # bad checksum
    assert not iban_ok("DE8937040044053201300")  # German IBANs have 22 characters
    assert not iban_ok("1234370400440532013000")


# --- the built-in detectors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to john.doe+tag@example.co.uk.", ["john.doe+tag@example.co.uk"]),
        ("a@b.io and x_y@sub.domain.org", ["a@b.io", "x_y@sub.domain.org"]),
        ("@app.get('/users') and user@localhost and me@x.c", []),
        ("git@github.com:org/repo.git", ["git@github.com"]),
    ],
)
def test_email(text: str, expected: list[str]) -> None:
    assert spans(email_detector(), text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call +1 (555) 123-4567 now", ["+1 (555) 123-4567"]),
        ("+44 20 7946 0958; +4915112345678", ["+44 20 7946 0958", "+4915112345678"]),
        ("(555) 123-4567 or 555.123.4567", ["(555) 123-4567", "555.123.4567"]),
        ("Paris: 06 12 34 56 78, London 020 7946 0958", ["06 12 34 56 78", "020 7946 0958"]),
    ],
)
def test_phone(text: str, expected: list[str]) -> None:
    assert spans(phone_detector(), text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "in 2024 we shipped 1234 builds",
        "id 123456789012 and 4155551234",  # integers without separators
        "sizes 128 256 1024, 1.2.3.4, 192.168.100.200",
        "at 2024-01-15 12:30:00",
        "+1 555",  # too short
        f"card {VISA} and {MASTERCARD}",  # a card is not a phone number
    ],
)
def test_phone_negatives(text: str) -> None:
    assert spans(phone_detector(), text) == []


def test_card() -> None:
    text = f"visa {VISA} exp 12/25, mc {MASTERCARD}, amex {AMEX}."
    assert spans(card_detector(), text) == [VISA, MASTERCARD, AMEX]


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "0000 0000 0000 0000",  # passes Luhn, but one digit
        "1700000000000000",  # a millisecond timestamp (issuer ranges start with 2-6)
        "order 12345678901234567890123",  # too long
        "pi is 3.14159265358979323846",
    ],
)
def test_card_negatives(text: str) -> None:
    assert spans(card_detector(), text) == []


def test_iban() -> None:
    text = f"pay {IBAN_DE} BANK or {IBAN_GB}."
    assert spans(iban_detector(), text) == [IBAN_DE, IBAN_GB]
    assert spans(iban_detector(), "bad DE89 3704 0044 0532 0130 01 and DE8937") == []


@pytest.mark.parametrize(
    "secret",
    [
        OPENAI_KEY,
        ANTHROPIC_KEY,
        "sk-gw-0123456789ab_Q2hhbmdlTWUtbm90LWEtcmVhbC1rZXktMTIzNDU2Nzg5",
        GOOGLE_KEY,
        AWS_KEY_ID,
        "ASIAY34FZKBOKMUTVV7A",
        GITHUB_TOKEN,
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        SLACK_TOKEN,
        STRIPE_KEY,
        "rk_live_51H8sQwErTyUiOpAsDfGh",
        JWT,
        PEM,
    ],
)
def test_secret_shapes(secret: str) -> None:
    assert spans(secret_detector(), f"x = '{secret}'\n") == [secret]


def test_bearer_token_only_the_token() -> None:
    text = "Authorization: Bearer abc123DEF456ghi789JKL0.\nBearer authentication-is-required-here"
    assert spans(secret_detector(), text) == ["abc123DEF456ghi789JKL0"]


def test_a_truncated_private_key_is_still_covered() -> None:
    truncated = PEM.split("-----END")[0]
    found = spans(secret_detector(), "key: " + truncated)
    assert found == [truncated]


@pytest.mark.parametrize(
    "text",
    [
        "pip install scikit-learn; sk-learn-compatible-estimator-interface",
        "task-1234567890abcdefghijABCDEFGH",  # `sk-` inside a word
        "AKIAIOSFODNN7EXAMPLE2",  # too long for an AWS key id
        "eyJhbGciOiJIUzI1NiJ9 alone is a header, not a token",
        "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJ\n-----END PUBLIC KEY-----",
    ],
)
def test_secret_negatives(text: str) -> None:
    assert spans(secret_detector(), text) == []


def test_deny_list_whole_words_case_insensitive() -> None:
    detector = deny_list_detector(["Project Titan", "acme"], case_sensitive=False)
    text = "PROJECT  TITAN ships; acme, Acme-Corp and acmeish and titanium"
    assert spans(detector, text) == ["PROJECT  TITAN", "acme", "Acme"]


def test_deny_list_case_sensitive() -> None:
    detector = deny_list_detector(["Acme"], case_sensitive=True)
    assert spans(detector, "acme Acme ACME") == ["Acme"]


def test_deny_list_non_ascii_text_still_matches() -> None:
    detector = deny_list_detector(["Müller"], case_sensitive=False)
    assert spans(detector, "Herr MÜLLER und müller") == ["MÜLLER", "müller"]


def test_regex_detector() -> None:
    detector = regex_detector([r"\bTICKET-\d{3,6}\b", r"internal\.example"], case_sensitive=False)
    text = "see ticket-1234 on INTERNAL.example, not TICKET-12 ünd TICKET-555"
    assert spans(detector, text) == ["ticket-1234", "INTERNAL.example", "TICKET-555"]
    with pytest.raises(PatternError, match="back-references"):
        regex_detector([r"(\d+)-\1x"], case_sensitive=True)


def test_an_operator_pattern_cannot_backtrack_catastrophically() -> None:
    r"""`^(\w+\s?)*$` backtracks exponentially in `re` (27 characters took 6.7 s, doubling with
    each one, holding the GIL); on the linear-time engine 10,000 characters take milliseconds.
    A child process bounds the test's wait if that ever regresses."""
    program = (
        "from ai_gateway.security.detectors import regex_detector\n"
        "detector = regex_detector([r'^(\\w+\\s?)*$'], case_sensitive=True)\n"
        "print(len(detector.scan('a' * 10_000 + '!').hits))\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the pattern backtracked")
    assert done.stdout.strip() == "0", done.stderr
    detector = regex_detector([r"^(\w+\s?)*$"], case_sensitive=True)
    assert spans(detector, "just some words") == ["just some words"]


# --- bounds the streaming filter relies on ------------------------------------------------------


@pytest.mark.parametrize(
    "detector",
    [
        phone_detector(),
        card_detector(),
        iban_detector(),
        secret_detector(),
        injection_detector(),
        deny_list_detector(["a b c", "secret project"], case_sensitive=False),
    ],
    ids=lambda d: d.kind,
)
def test_every_shape_fits_in_the_detectors_max_len(detector: PatternDetector) -> None:
    for shape in detector.shapes:
        widest = sre_parse.parse(shape.source).getwidth()[1]
        assert widest + 2 <= detector.max_len, shape.source  # + look-ahead
    assert injection_detector().max_len == INJECTION_MAX_LEN


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet="4111 -0@abc.eyJsk-Bearer+()", max_size=120),
    chunk=st.integers(min_value=1, max_value=40),
    pos=st.integers(min_value=0, max_value=10),
)
def test_searching_in_chunks_finds_the_same_matches(text: str, chunk: int, pos: int) -> None:
    for detector in (phone_detector(), card_detector(), secret_detector()):
        for regex in detector._regexes:
            whole = [m.span() for m in regex.finditer(text, pos)]
            chunked = bounded_finditer(regex, text, pos, detector.max_len, chunk)
            assert [m.span() for m in chunked] == whole, regex.pattern


def test_hold_keeps_only_what_could_still_match() -> None:
    card = card_detector()
    assert card.hold("my card is 4111 1111") == len("my card is")
    assert card.hold("done.") >= len("done.") - 1  # nothing numeric pending
    email = email_detector()
    text = "write to bob@exam"
    assert email.hold(text) == text.index("bob")
    assert email.hold("x" * 300) == 300 - email.max_len  # bounded by the longest email
