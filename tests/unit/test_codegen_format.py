"""The code-generation answer as files: paths and languages found where models put them, each
file's syntax checked by a parser (never run), the prose kept as the explanation."""

from __future__ import annotations

from ai_gateway.codegen.format import check_syntax, format_answer

ANSWER = """I added a helper and its config.

`src/util.py`
```python
def add(a: int, b: int) -> int:
    return a + b
```

```json path=config.json
{"debug": true}
```

File: deploy.yaml
```
replicas: 2
```

Done."""


def test_files_paths_languages_and_the_explanation() -> None:
    result = format_answer(ANSWER, "python")
    assert [(f.path, f.language, f.check) for f in result.files] == [
        ("src/util.py", "python", "ok"),
        ("config.json", "json", "ok"),
        ("deploy.yaml", "yaml", "ok"),
    ]
    assert result.files[0].content == "def add(a: int, b: int) -> int:\n    return a + b\n"
    assert result.explanation == "I added a helper and its config.\n\nDone."


def test_syntax_errors_name_the_line_and_nothing_is_run() -> None:
    broken = format_answer("```python\nimport os\ndef f(:\n    os.remove('x')\n```", None)
    [file] = broken.files
    assert (file.check, file.error) == ("error", "line 2: invalid syntax")
    assert check_syntax("json", '{"a": }')[0] == "error"
    assert check_syntax("yaml", "a: [1, 2")[0] == "error"
    assert check_syntax("toml", "a = ")[0] == "error"
    assert check_syntax("rust", "fn main() {")[0] == "unchecked"


def test_a_block_without_a_path_takes_the_only_named_file_or_a_snippet_name() -> None:
    one = format_answer("```\nprint(1)\n```", "python", named=("app.py",))
    assert (one.files[0].path, one.files[0].language) == ("app.py", "python")
    two = format_answer("```ts\nlet a = 1\n```\n```ts\nlet b = 2\n```", None, named=("a", "b"))
    assert [f.path for f in two.files] == ["snippet-1.ts", "snippet-2.ts"]
    assert {f.check for f in two.files} == {"unchecked"}


def test_an_answer_cut_inside_a_block_marks_that_file() -> None:
    [file] = format_answer("Here:\n```python\ndef f():\n    return 1", None).files
    assert file.check == "error"
    assert "cut short" in (file.error or "")


def test_an_answer_without_code_is_all_explanation() -> None:
    result = format_answer("Nothing to change: the function is already correct.", "go")
    assert result.files == ()
    assert result.explanation.startswith("Nothing to change")


def test_fill_in_the_middle_is_checked_between_its_prefix_and_suffix() -> None:
    around = ("def f(x):\n", "\nprint(f(1))\n")
    good = format_answer("```python\n    return x + 1\n```", "python", around=around)
    assert good.files[0].check == "ok"  # not valid alone (indented), valid in place
    bad = format_answer("```python\n    return (x +\n```", "python", around=around)
    assert bad.files[0].check == "error"
