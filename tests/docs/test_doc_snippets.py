"""README.md and docs/*.md work as written: their code runs, their commands parse, their links resolve.

- A ```python block runs in a fresh interpreter (working directory: a temporary folder) unless the
  line before it is ``<!-- snippet: fragment: why -->`` (it uses names the reader supplies) or
  ``<!-- snippet: slow: why -->`` (it trains); those are compiled, and every latentshape name they
  use (imports, ``ls.X`` attributes, keyword arguments of calls) must exist. docs/shapers.md's
  blocks run in test_shapers_md.py.
- Every ``latentshape ...`` line of a bash block parses with the command-line parser; every
  ``python benchmarks/...`` command names a script that exists and knows the options it is given;
  every ``pip install`` extra exists in pyproject.toml.
- Every relative link and image resolves to a file (and #anchors to a heading); every repository
  path in backticks exists; every backticked call of a public latentshape name binds to its
  signature (constructors are built); every backticked ``keyword=`` is a parameter of some public
  latentshape callable.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import latentshape
import latentshape.functional

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if "_build" not in p.parts)]
RUN_ELSEWHERE = {ROOT / "docs" / "shapers.md"}  # tests/docs/test_shapers_md.py runs these
BLOCK = re.compile(r"(?:^<!-- snippet: (?P<mark>\w+):[^\n]*-->\n)?^```(?P<lang>[^\s`]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$",
                   flags=re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"(?<![}\w])`([^`\n]+)`")  # not a MyST role's {math}`...`
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
EXTERNAL_KEYWORDS = {"fullgraph"}  # torch.compile's, named in the README


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _blocks(language: str):
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            if match.group("lang") == language:
                line = text.count("\n", 0, match.start("body"))
                yield document, line, match.group("mark"), match.group("body")


def _prose(document: Path) -> str:
    """The document without its fenced blocks."""
    return BLOCK.sub("", document.read_text(encoding="utf-8"))


PYTHON = [block for block in _blocks("python") if block[0] not in RUN_ELSEWHERE]
RUNNABLE = [block for block in PYTHON if block[2] is None]
STATIC = [block for block in PYTHON if block[2] is not None]


def _ids(blocks):
    return [f"{_relative(document)}:{line}" for document, line, _, _ in blocks]


def test_the_marks_are_known_and_most_examples_run():
    assert {mark for _, _, mark, _ in PYTHON} <= {None, "fragment", "slow"}
    assert len(RUNNABLE) >= 3, "the quick starts must stay runnable"


@pytest.mark.parametrize("block", RUNNABLE, ids=_ids(RUNNABLE))
def test_python_block_runs_as_written(block, tmp_path):
    document, line, _, code = block
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{_relative(document)}:{line} failed:\n{result.stderr[-3000:]}"


# -- names, without running ----------------------------------------------------------------------
def _resolve(dotted: str):
    """The object a dotted latentshape name denotes; AttributeError naming the missing part."""
    parts = dotted.split(".")
    target = latentshape
    for depth, part in enumerate(parts[1:], start=2):
        if not hasattr(target, part):
            try:
                importlib.import_module(".".join(parts[:depth]))
            except ImportError:
                raise AttributeError(f"{dotted}: no {'.'.join(parts[:depth])}") from None
        target = getattr(target, part)
    return target


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted latentshape name it stands for; imports checked on the way."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for name in node.names:
                if name.name.split(".")[0] == "latentshape":
                    _resolve(name.name)
                    local = name.asname or "latentshape"
                    aliases[local] = name.name if name.asname else "latentshape"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "latentshape":
            for name in node.names:
                _resolve(f"{node.module}.{name.name}")
                aliases[name.asname or name.name] = f"{node.module}.{name.name}"
    return aliases


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return base and f"{base}.{node.attr}"
    return None


def _check_call(call: ast.Call, target) -> None:
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    keywords = {keyword.arg: None for keyword in call.keywords if keyword.arg}
    signature.bind_partial(*[None] * len(call.args), **keywords)


def check_names(code: str, aliases: dict[str, str] | None = None) -> None:
    """Every latentshape name and keyword argument in ``code`` exists (TypeError/AttributeError if not)."""
    tree = ast.parse(code)
    aliases = {**(aliases or {}), **_aliases(tree)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (dotted := _dotted(node, aliases)):
            _resolve(dotted)
        if isinstance(node, ast.Call) and (dotted := _dotted(node.func, aliases)):
            _check_call(node, _resolve(dotted))


@pytest.mark.parametrize("block", STATIC, ids=_ids(STATIC))
def test_fragment_uses_names_that_exist(block):
    document, line, _, code = block
    try:
        check_names(code)
    except (TypeError, AttributeError, SyntaxError) as error:
        pytest.fail(f"{_relative(document)}:{line}: {error}")


def test_check_names_catches_a_misspelled_keyword_and_a_missing_name():
    check_names("import latentshape as ls\nls.WristbandLoss(lambda_coord=0)")
    with pytest.raises(TypeError):
        check_names("import latentshape as ls\nls.WristbandLoss(lambda_cord=0)")
    with pytest.raises(AttributeError):
        check_names("from latentshape import WristbandLos")


# -- commands ------------------------------------------------------------------------------------
def _command_lines():
    for document, line, _, body in _blocks("bash"):
        for offset, text in enumerate(body.splitlines()):
            command = text.split(" #")[0].strip()
            if command:
                yield f"{_relative(document)}:{line + offset + 1}", command


def _latentshape_commands():
    for where, command in _command_lines():
        for part in command.split("&&"):
            words = [word.strip("[]") for word in shlex.split(part)]
            if words and words[0] == "latentshape":
                yield where, words[1:]


LATENTSHAPE_COMMANDS = list(_latentshape_commands())


@pytest.mark.parametrize("where,arguments", LATENTSHAPE_COMMANDS, ids=[w for w, _ in LATENTSHAPE_COMMANDS])
def test_latentshape_command_parses(where, arguments, capsys):
    from latentshape.cli import build_parser

    try:
        build_parser().parse_args(arguments)
    except SystemExit as exit_:
        assert exit_.code == 0, f"{where}: latentshape {' '.join(arguments)}: {capsys.readouterr().err}"


def _script_commands():
    """(where, script, options) of every ``python benchmarks|scripts|examples/X.py ...`` in the docs."""
    pattern = re.compile(r"python ((?:benchmarks|scripts|examples)/[\w/]+\.py)((?: [^`|&#\n]*)?)")
    for document in DOCUMENTS:
        for number, text in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
            for match in pattern.finditer(text):
                yield f"{_relative(document)}:{number}", match.group(1), re.findall(r"(?<![\w-])--[\w-]+", match.group(2))


SCRIPT_COMMANDS = list(_script_commands())


def _source_with_local_imports(script: Path) -> str:
    source = script.read_text(encoding="utf-8")
    imported = set(re.findall(r"^\s*(?:from|import) (\w+)", source, flags=re.MULTILINE))
    siblings = [path.read_text(encoding="utf-8") for path in script.parent.glob("*.py") if path.stem in imported]
    return "\n".join([source, *siblings])


@pytest.mark.parametrize("where,script,options", SCRIPT_COMMANDS, ids=[f"{w}:{s}" for w, s, _ in SCRIPT_COMMANDS])
def test_script_exists_and_knows_its_options(where, script, options):
    path = ROOT / script
    assert path.is_file(), f"{where}: no {script}"
    source = _source_with_local_imports(path)
    unknown = [option for option in options if f'"{option}"' not in source and f"'{option}'" not in source]
    assert unknown == [], f"{where}: {script} has no option {unknown}"


def test_pip_extras_exist():
    tomllib = pytest.importorskip("tomllib")
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = {extra for document in DOCUMENTS
             for extra in re.findall(r"pip install[^\n`]*?\[([\w,]+)\]", document.read_text(encoding="utf-8"))}
    assert named and {e for group in named for e in group.split(",")} <= extras


# -- links, paths and names in the prose ---------------------------------------------------------
def _slug(heading: str) -> str:
    text = re.sub(r"[`*_]|\{[^}]*\}", "", heading).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text))


def _anchors(document: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} +(.+?) *$", _prose(document), flags=re.MULTILINE)}


@pytest.mark.parametrize("document", DOCUMENTS, ids=[_relative(d) for d in DOCUMENTS])
def test_relative_links_resolve(document):
    broken = []
    for target in LINK.findall(INLINE.sub("", _prose(document))):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(target)
    assert broken == []


def _inline_spans(document: Path) -> list[str]:
    return [span.strip() for span in INLINE.findall(_prose(document))]


@pytest.mark.parametrize("document", DOCUMENTS, ids=[_relative(d) for d in DOCUMENTS])
def test_backticked_repository_paths_exist(document):
    roots = (ROOT / "src" / "latentshape", ROOT / "benchmarks", ROOT / "scripts", ROOT / "examples")
    missing = []
    for span in _inline_spans(document):
        path = span.split()[-1] if span.startswith("python ") else span
        if re.fullmatch(r"(benchmarks|docs|examples|scripts|tests|src)/[\w./-]*", path):
            if not (ROOT / path).exists():
                missing.append(path)
        elif re.fullmatch(r"[\w/]+\.py", path):  # a module path like wristband/loss.py, or a script
            if not any((root / path).exists() or list(root.rglob(path)) for root in roots):
                missing.append(path)
    assert missing == []


def _public_callables():
    for name in [*latentshape.__all__, *latentshape.functional.__all__]:
        target = getattr(latentshape, name, None) or getattr(latentshape.functional, name)
        if callable(target):
            yield target


def _parameters() -> set[str]:
    names = set()
    for target in _public_callables():
        try:
            names |= set(inspect.signature(target).parameters)
        except (TypeError, ValueError):
            pass
    return names


@pytest.mark.parametrize("document", DOCUMENTS, ids=[_relative(d) for d in DOCUMENTS])
def test_backticked_calls_and_keywords_exist(document):
    public = set(latentshape.__all__)
    aliases = {name: f"latentshape.{name}" for name in public} | {"latentshape": "latentshape"}
    namespace = {name: getattr(latentshape, name) for name in public} | {"latentshape": latentshape}
    parameters, problems = _parameters(), []
    for span in _inline_spans(document):
        if keyword := re.fullmatch(r"(\w+)=(?!=)\S*", span):
            if keyword.group(1) not in parameters | EXTERNAL_KEYWORDS:
                problems.append(f"{span}: no public callable takes {keyword.group(1)}=")
            continue
        try:
            node = ast.parse(span, mode="eval").body
        except SyntaxError:
            continue
        call = node if isinstance(node, ast.Call) else None
        root = call.func if call else node
        while isinstance(root, ast.Attribute):
            root = root.value
        if not (isinstance(root, ast.Name) and (root.id in public or root.id == "latentshape")):
            continue
        try:
            check_names(span, aliases)
            if call and _complete(call) and inspect.isclass(eval(ast.unparse(call.func), namespace)):
                eval(span, namespace)  # constructors are cheap: this checks the values too
        except NameError:
            pass  # a placeholder argument such as `z`
        except (TypeError, ValueError, AttributeError) as error:
            problems.append(f"{span}: {error}")
    assert problems == []


def _complete(call: ast.Call) -> bool:
    """Whether ``call`` gives its target every required argument, with no ``...`` placeholder."""
    if any(isinstance(node, ast.Constant) and node.value is Ellipsis for node in ast.walk(call)):
        return False
    try:
        signature = inspect.signature(_resolve("latentshape." + ast.unparse(call.func).removeprefix("latentshape.")))
        signature.bind(*[None] * len(call.args), **{k.arg: None for k in call.keywords if k.arg})
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def test_no_text_names_the_seed_documents():
    files = [*DOCUMENTS, *(ROOT / "src").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py"),
             *(ROOT / "tests").rglob("*.py")]
    hits = [f"{_relative(path)}:{number}" for path in files if path != Path(__file__).resolve()
            for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if re.search(r"\bthe seed's\b", text, flags=re.IGNORECASE)]
    assert hits == []
