"""Text for people: names as they can be shown, and class names that are safe folder names
(no torch here, so the window can use it early)."""

from __future__ import annotations

import sys


def display_path(text: str) -> str:
    """A name as a person can read it: bytes that are not UTF-8 shown as ``\\xNN``.

    Linux allows any bytes in file names; Python keeps undecodable ones as lone surrogates,
    which terminals and Qt cannot show. The original name is kept everywhere else.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F


def printable(text: str) -> str:
    """``display_path``, and control characters (a terminal's escape codes) shown as ``\\xNN``;
    line breaks and tabs stay, so whole reports pass through it."""
    text = display_path(text)
    if not any(_is_control(ch) and ch not in "\n\t" for ch in text):
        return text
    return "".join(f"\\x{ord(ch):02x}" if _is_control(ch) and ch not in "\n\t" else ch for ch in text)


def class_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a class name, or None. A class name becomes a folder name (Copy
    into class folders, datasets made from predictions), so it must be one plain path component."""
    if not isinstance(name, str) or not name:
        return "a class name must be a non-empty text"
    shown = printable(name)
    if name in (".", ".."):
        return f"class name {shown!r} is not a folder name"
    if "/" in name or "\0" in name or (sys.platform == "win32" and "\\" in name):
        return f"class name {shown!r} is a path, not a single folder name"
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        return f"class name {shown[:40]!r}… is longer than a folder name may be (255 bytes)"
    return None


def class_names_problem(names: object) -> str | None:
    """The first problem of a list of class names (each one a folder name, none twice), or None."""
    if not isinstance(names, (list, tuple)):
        return "'classes' must be a list of names"
    for name in names:
        problem = class_name_problem(name)
        if problem:
            return problem
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        return f"class name {printable(twice)!r} appears twice"
    return None
