"""Reading a small file that someone else controls: the login, a ``NAME_FILE`` secret.

Such a path may be a FIFO with no writer, a link to ``/dev/zero``, a directory, or a file
of gigabytes. :func:`read_small_file` reads only a regular file (a link to one is fine)
and at most :data:`MAX_FILE_BYTES` of it, and never blocks: it checks the kind with
``stat`` before opening, opens with ``O_NONBLOCK | O_NOCTTY`` (a FIFO swapped in between
neither blocks the open nor becomes the controlling terminal) and checks again with
``fstat`` before the first read. Its refusals are :class:`NotARegularFile` and
:class:`FileTooLarge`; callers turn them into their own sentence (a login problem, a
configuration problem).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_FILE_BYTES = 1024 * 1024
_CHUNK = 64 * 1024

DIRECTORY = "a directory"
_KINDS = (
    (stat.S_ISDIR, DIRECTORY),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotARegularFile(OSError):
    """The path is something else than a regular file.

    ``kind`` says what, in words ("a FIFO (named pipe)"); ``what`` also says where a link
    leads ("a link to /dev/zero, a character device"), for the sentence a user reads.
    """

    def __init__(self, path: Path, kind: str, *, target: str | None = None) -> None:
        self.kind = kind
        self.what = kind if target is None else f"a link to {target}, {kind}"
        super().__init__(f"{path} is {self.what}, not a regular file")


class FileTooLarge(OSError):
    """The file holds more than ``limit`` bytes; nothing past the limit was read."""

    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(f"{path} is over {limit} bytes")
        self.limit = limit


def read_small_file(path: Path) -> bytes:
    """The bytes of the regular file at ``path``, or an :class:`OSError` saying why not.

    :class:`FileNotFoundError` when nothing is there; :class:`NotARegularFile` and
    :class:`FileTooLarge` as above; any other :class:`OSError` as the system gives it.
    """
    _require_regular(path, os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        opened = os.fstat(fd)
        _require_regular(path, opened.st_mode)
        limit = MAX_FILE_BYTES
        if opened.st_size > limit:
            raise FileTooLarge(path, limit)
        chunks: list[bytes] = []
        size = 0
        # One byte past the limit tells a file that grew while we read from one that fits.
        while chunk := os.read(fd, min(_CHUNK, limit + 1 - size)):
            size += len(chunk)
            if size > limit:
                raise FileTooLarge(path, limit)
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _require_regular(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    target = os.path.realpath(path)
    # A link: say where it leads (/dev/zero), unless nowhere a user could look (a pipe's
    # /proc/self/fd/0 ends at "pipe:[123]").
    shown = target != os.path.abspath(path) and os.path.exists(target)
    raise NotARegularFile(path, kind, target=target if shown else None)
