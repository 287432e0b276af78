"""Small file helpers shared by the persistence layer: atomic replace, text I/O.

Text is read and written as UTF-8 with ``surrogateescape``: a command line
with bytes that are not UTF-8 survives the round trip through the queuestate
unchanged instead of crashing the launcher.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mpilauncher.errors import InputError, LauncherFailure

ENCODING = "utf-8"
ERRORS = "surrogateescape"


def atomic_write(path: Path, text: str | Iterable[bytes]) -> None:
    """Replace ``path`` by ``text`` (or the pieces of its bytes, written one after the other) so that a
    crash leaves the old or the new file, never half."""
    put_in_place(write_aside(path, text), path)


def write_aside(path: Path, text: str | Iterable[bytes]) -> Path:
    """The first half of :func:`atomic_write`: ``text`` written (handed to the OS, not synced) to a file
    beside ``path``, whose name is returned; what cannot be written (a full disk) is raised here."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            if isinstance(text, str):
                out.write(text.encode(ENCODING, ERRORS))
            else:
                for piece in text:
                    out.write(piece)
    except OSError as err:
        _remove(tmp)
        raise LauncherFailure(f"{path}: cannot write: {err.strerror or err}") from None
    return tmp


def put_in_place(tmp: Path, path: Path) -> None:
    """The second half of :func:`atomic_write`: ``tmp`` synced, renamed to ``path``, the rename synced."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        raise LauncherFailure(f"{path}: cannot write: {err.strerror or err}") from None
    fsync_directory(path.parent)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def fsync_directory(directory: Path) -> None:
    """Make a rename durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_text(path: Path, what: str) -> str:
    """Read a user file whole, turning every OS error into one clear line; a leading byte-order mark
    (Windows editors write one) is no part of the text: kept, it was the first command's first word."""
    text = read_bytes(path, what).decode(ENCODING, ERRORS)
    return text[1:] if text.startswith("\ufeff") else text


def read_bytes(path: Path, what: str) -> bytes:
    """A user file's bytes, every OS error turned into one clear line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no such {what}", str(path)) from None
    except IsADirectoryError:
        raise InputError(f"is a directory, not a {what}", str(path)) from None
    except PermissionError:
        raise InputError(f"cannot read {what}: permission denied", str(path)) from None
    except OSError as err:
        raise InputError(f"cannot read {what}: {err.strerror or err}", str(path)) from None
    return data


#: Up to this many bytes the interpreter's own SHA-256 digests a file.  Why not always hashlib's:
#: importing hashlib loads OpenSSL's libcrypto, 4-7 ms of every launcher start measured here (of
#: ~70 ms that are the launcher's own), and OpenSSL's faster digest (~1.7 GB/s against ~0.29 GB/s
#: for the builtin) only repays that past ~2 MiB of commandlines; a sweep of 20,000 lines is ~0.5 MiB.
BUILTIN_DIGEST_BYTES = 1 << 20


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` in hex, the same whichever implementation computes it (see above)."""
    if len(data) <= BUILTIN_DIGEST_BYTES:
        try:
            from _sha256 import sha256  # CPython 3.10 and 3.11
        except ImportError:
            try:
                from _sha2 import sha256  # CPython 3.12 and later
            except ImportError:
                from hashlib import sha256
    else:
        from hashlib import sha256
    return sha256(data).hexdigest()
