"""File bytes on disk: one file per uploaded file under a folder (`<data_dir>/rag/files` by
default), written to a temporary name and renamed into place, so a crash never leaves half a
file under its id. Blocking I/O, run on a worker thread."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

_ID = re.compile(r"file-[0-9a-f]{24}")


class FileBlobs:
    def __init__(self, folder: str | Path) -> None:
        self._folder = Path(folder)

    def _path(self, file_id: str) -> Path:
        if _ID.fullmatch(file_id) is None:  # ids come from us; never a path from a client
            raise ValueError(f"not a file id: {file_id!r}")
        return self._folder / file_id

    async def save(self, file_id: str, data: bytes) -> None:
        await asyncio.to_thread(self._save, file_id, data)

    def _save(self, file_id: str, data: bytes) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._path(file_id)
        temporary = path.with_name(path.name + ".part")
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)

    async def read(self, file_id: str) -> bytes | None:
        """The bytes, or None when they are gone."""
        return await asyncio.to_thread(self._read, file_id)

    def _read(self, file_id: str) -> bytes | None:
        try:
            return self._path(file_id).read_bytes()
        except FileNotFoundError:
            return None

    async def delete(self, file_id: str) -> None:
        await asyncio.to_thread(self._path(file_id).unlink, True)
