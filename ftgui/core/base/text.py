"""Text for people: names as they can be shown (no torch here, so the window can use it early)."""

from __future__ import annotations


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
