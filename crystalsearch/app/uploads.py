"""Uploaded files: capped in number and size, written under the app's own folder with safe names; zip
archives unpacked flat (no member path is ever used as a path) within the same caps."""

from __future__ import annotations

import re
import uuid
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from crystalsearch.errors import InputError

if TYPE_CHECKING:
    from starlette.datastructures import FormData, UploadFile
    from starlette.requests import Request

__all__ = ["UploadError", "read_form", "save_uploads"]

_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")


class UploadError(InputError):
    """An upload refused as a whole (too many files, too large, not a form)."""

    def __init__(self, reason: str) -> None:
        super().__init__("upload", reason)


def safe_name(name: str, taken: set[str]) -> str:
    """A file name without any folder part or odd characters, unique among ``taken``."""
    base = _SAFE.sub("_", Path(name.replace("\\", "/")).name).lstrip(".") or "upload"
    base = base[:120]
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{n}-{base}"
    taken.add(candidate)
    return candidate


async def read_form(request: Request, *, max_files: int, max_bytes: int) -> FormData:
    """The request's form, refused with one clear line when it is larger or has more files than allowed."""
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException

    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise UploadError("the request must give its size (Content-Length)")
    if int(length) > max_bytes:
        raise UploadError(f"{int(length) / 1e6:.1f} MB is more than the {max_bytes / 1e6:.0f} MB allowed per upload")
    try:
        return await request.form(max_files=max_files, max_fields=50, max_part_size=64 * 1024)
    except (MultiPartException, HTTPException) as exc:  # Starlette turns the first into the second
        text = str(getattr(exc, "detail", None) or exc)
        if "too many files" in text.lower():
            raise UploadError(f"more than {max_files} files in one upload (at most {max_files})") from None
        raise UploadError(text) from None


async def save_uploads(
    files: list[UploadFile], folder: Path, *, max_files: int, max_bytes: int
) -> tuple[Path, list[Path]]:
    """Write uploaded files (zip archives unpacked) into a fresh folder under ``folder``; returns that folder
    and the files in upload order. Raises :class:`UploadError` past ``max_files`` files or ``max_bytes``
    unpacked bytes."""
    dest = folder / uuid.uuid4().hex[:12]
    dest.mkdir(parents=True)
    taken: set[str] = set()
    written: list[Path] = []
    total = 0
    for upload in files:
        data = await upload.read()
        total += len(data)
        if total > max_bytes:
            raise UploadError(f"the files add up to more than the {max_bytes / 1e6:.0f} MB allowed")
        name = upload.filename or "upload"
        if name.lower().endswith(".zip"):
            written += _unzip(data, name, dest, taken, max_files=max_files - len(written), max_bytes=max_bytes - total)
        else:
            path = dest / safe_name(name, taken)
            path.write_bytes(data)
            written.append(path)
        if len(written) > max_files:
            raise UploadError(f"more than {max_files} files in one upload (at most {max_files})")
    return dest, written


def _unzip(data: bytes, name: str, dest: Path, taken: set[str], *, max_files: int, max_bytes: int) -> list[Path]:
    import io

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InputError(name, "not a readable zip archive") from None
    members = [m for m in archive.infolist() if not m.is_dir() and not Path(m.filename).name.startswith(".")]
    if len(members) > max_files:
        raise UploadError(f"{name}: {len(members)} files, more than the {max_files} allowed")
    if sum(m.file_size for m in members) > max_bytes:
        raise UploadError(f"{name}: unpacks to more than the {max_bytes / 1e6:.0f} MB allowed")
    out = []
    for member in members:
        path = dest / safe_name(member.filename, taken)
        with archive.open(member) as src:
            content = src.read(max_bytes + 1)
        if len(content) > member.file_size:  # a member larger than its header says
            raise UploadError(f"{name}: {member.filename} is larger than its archive entry claims")
        path.write_bytes(content)
        out.append(path)
    return out
