"""Guard: every user-facing sentence comes from the message catalog (bots/core/locale/*.po).

A handler answers with Reply(t("key", locale, ...)), with a variable or attribute that holds
such a text, or with catalog sentences joined by a separator: " ".join([text, *notes]). These
tests read the source of every module under bots/ and fail on a Reply built from a string
literal, an f-string, a concatenation or a %/.format on a literal; on a literal passed straight
to a platform's send method; on Arabic text anywhere in the Python source (it belongs in the PO
files); and on a t() key that the catalog does not have.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bots.core.messages import keys
from storage.images import REJECT_CODES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bots", "tasks", "quota", "storage")  # what pyproject ships
# Operator-facing command-line output (argument help, the demo's progress), not chat replies.
OPERATOR_FACING = {
    "bots/core/messages.py",
    "bots/cli.py",
    "bots/console/demo.py",
    "bots/console/repl.py",
}
ARABIC = re.compile(r"[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF]")
# Chat-platform methods that post text (python-telegram-bot, aiogram, discord.py).
SEND_METHODS = {
    "send_message",
    "reply_text",
    "reply_photo",
    "send_photo",
    "edit_message_text",
    "edit_text",
    "answer",
    "answer_photo",
    "send",
    "reply",
    "followup_send",
    "send_response",
    "send_message_reply",
}
TEXT_KEYWORDS = {"text", "content", "caption", "message"}


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _is_catalog_call(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and _callee(node) == "t"


def _builds_text(node: ast.expr) -> bool:
    """Whether `node` makes a sentence in code: a literal, an f-string, or an operation on one."""
    match node:
        case ast.Constant(value=str()) | ast.JoinedStr():
            return True
        case ast.BinOp(op=ast.Add() | ast.Mod(), left=left, right=right):
            return _builds_text(left) or _builds_text(right)
        case ast.Call(func=ast.Attribute(attr="format" | "join" | "format_map", value=value)):
            return _builds_text(value)
        case ast.IfExp(body=body, orelse=orelse):
            return _builds_text(body) or _builds_text(orelse)
    return False


def _has_letters(node: ast.expr) -> bool:
    return any(
        isinstance(sub, ast.Constant)
        and isinstance(sub.value, str)
        and re.search(r"[^\W\d_]", sub.value)
        for sub in ast.walk(node)
    )


def _assignments(tree: ast.AST) -> dict[str, list[ast.expr]]:
    """Every value assigned to each simple name in the module, whatever the scope."""
    found: dict[str, list[ast.expr]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr) and node.value:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                found.setdefault(target.id, []).append(value)
    return found


def _reply_text_ok(node: ast.expr, assigned: dict[str, list[ast.expr]]) -> bool:
    """A Reply's text must be t(...), a name or attribute holding text made elsewhere, or
    catalog sentences joined by a separator without letters: " ".join([text, *notes()])."""
    match node:
        case ast.Call(func=ast.Attribute(attr="join", value=ast.Constant(value=str() as sep))):
            return not re.search(r"[^\W\d_]", sep) and _joins_catalog_text(node, assigned)
        case ast.Call():
            return _is_catalog_call(node)
        case ast.Name(id=name):  # a local built in code (msg = f"...") is caught here
            return not any(_builds_text(value) for value in assigned.get(name, []))
        case ast.Attribute():
            return True
        case ast.IfExp(body=body, orelse=orelse):
            return _reply_text_ok(body, assigned) and _reply_text_ok(orelse, assigned)
    return False


def _joins_catalog_text(join: ast.Call, assigned: dict[str, list[ast.expr]]) -> bool:
    """The joined items are spelled out ([a, b, *c]), and each is catalog text."""
    if len(join.args) != 1 or not isinstance(join.args[0], ast.List | ast.Tuple):
        return False
    for item in join.args[0].elts:
        if isinstance(item, ast.Starred):
            if _builds_text(item.value):
                return False
        elif not _reply_text_ok(item, assigned):
            return False
    return True


def reply_violations(source: str, filename: str = "<snippet>") -> list[str]:
    """Replies and platform sends whose text does not come from the catalog."""
    tree = ast.parse(source, filename)
    assigned = _assignments(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _callee(node)
        where = f"{filename}:{node.lineno}: {ast.unparse(node)[:120]}"
        if name == "Reply":
            text = node.args[0] if node.args else None
            text = next((k.value for k in node.keywords if k.arg == "text"), text)
            if text is None or not _reply_text_ok(text, assigned):
                found.append(f"{where}: Reply text is not t(...)")
        elif name in SEND_METHODS:
            sent = [*node.args, *(k.value for k in node.keywords if k.arg in TEXT_KEYWORDS)]
            if any(_builds_text(arg) and _has_letters(arg) for arg in sent):
                found.append(f"{where}: text sent to the platform is not t(...)")
    return found


def arabic_violations(source: str, filename: str = "<snippet>") -> list[str]:
    """String literals with Arabic letters: Arabic text belongs in the PO files."""
    return [
        f"{filename}:{node.lineno}: {node.value[:60]!r}"
        for node in ast.walk(ast.parse(source, filename))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and ARABIC.search(node.value)
    ]


def catalog_keys_used(source: str) -> Iterator[tuple[int, str, bool]]:
    """(line, key, exact) for each t() call with a literal key; exact=False for an f-string's
    literal prefix, as in t(f"image_{code}", ...)."""
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and _is_catalog_call(node) and node.args):
            continue
        match node.args[0]:
            case ast.Constant(value=str() as key):
                yield node.lineno, key, True
            case ast.JoinedStr(values=[ast.Constant(value=str() as prefix), *_]):
                yield node.lineno, prefix, False


def _modules(*packages: str) -> list[tuple[str, str]]:
    paths = sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))
    return [(p.relative_to(ROOT).as_posix(), p.read_text("utf-8")) for p in paths]


# --- the project's source ----------------------------------------------------------------


def test_handlers_reply_only_with_catalog_text() -> None:
    modules = [(name, src) for name, src in _modules("bots") if name not in OPERATOR_FACING]
    assert any(name == "bots/core/service.py" for name, _ in modules)
    violations = [v for name, src in modules for v in reply_violations(src, name)]
    assert not violations, "user-facing text built outside the catalog:\n" + "\n".join(violations)


def test_no_arabic_text_outside_the_po_files() -> None:
    violations = [v for name, src in _modules(*PACKAGES) for v in arabic_violations(src, name)]
    assert not violations, "Arabic literals belong in bots/core/locale:\n" + "\n".join(violations)


def test_every_key_the_code_uses_is_in_the_catalog() -> None:
    known = keys("en") & keys("ar")
    used = [(name, *k) for name, src in _modules("bots") for k in catalog_keys_used(src)]
    assert used
    missing = [
        f"{name}:{line}: {key!r}"
        for name, line, key, exact in used
        if (key not in known if exact else not any(k.startswith(key) for k in known))
    ]
    assert not missing, "t() keys missing from the catalog:\n" + "\n".join(missing)


def test_every_image_rejection_has_a_message() -> None:
    # bots/core/service.py answers a rejected upload with t(f"image_{code}", ...)
    assert {f"image_{code}" for code in REJECT_CODES} <= keys("en") & keys("ar")


# --- the guard itself ----------------------------------------------------------------------

CLEAN = """
from bots.core.messages import t

def handle(loc, reply, x):
    text = t("help", loc)
    other = t("styles", loc, styles=f"/{x}")
    if x:
        return Reply(t("queued", loc, style=x, position=1), job_id="j")
    if reply:
        return Reply(reply.text)
    await bot.send_message(chat_id=1, text=text, parse_mode="HTML")
    await channel.send(t("help", loc), file=File("out.png"))
    if reply:
        return Reply(" ".join([text, *notes(loc)]))
    return Reply(text=text if x else other)
"""


def test_the_guard_passes_catalog_text() -> None:
    assert reply_violations(CLEAN) == []
    assert arabic_violations(CLEAN) == []
    assert [key for _, key, _ in catalog_keys_used(CLEAN)] == ["help", "styles", "queued", "help"]


@pytest.mark.parametrize(
    "snippet",
    [
        'Reply("hello")',
        'Reply(f"hi {x}")',
        'Reply(text="Done: " + user)',
        'Reply(t("help", loc) + " Bye.")',
        'Reply("You have %d left" % n)',
        'Reply("You have {} left".format(n))',
        'Reply(", ".join(names))',
        'Reply(" ".join([t("help", loc), "Bye."]))',
        'Reply(" and ".join([t("help", loc), t("styles", loc)]))',
        'msg = f"hi {x}"\nReply(msg)',
        "Reply(text=render(x))",
        "Reply(*parts)",
        'Reply(t("help", loc) if x else "Sorry")',
        'await bot.send_message(chat_id, "hello there")',
        'await message.reply_text(f"Your image: {name}")',
        'await channel.send(content="Queued!")',
    ],
)
def test_the_guard_catches_text_built_in_code(snippet: str) -> None:
    assert len(reply_violations(snippet)) == 1, snippet


def test_the_guard_catches_arabic_in_code() -> None:
    found = arabic_violations('GREETING = "مرحبا"\nREPLY = f"تم {x}"\n', "bots/x.py")
    assert [v.split(":")[1] for v in found] == ["1", "2"]


def test_the_guard_catches_an_unknown_key() -> None:
    used = list(catalog_keys_used('t("no_such_key", loc)\nt(f"nope_{code}", loc)'))
    assert used == [(1, "no_such_key", True), (2, "nope_", False)]
    assert "no_such_key" not in keys()
