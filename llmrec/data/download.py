"""Downloads: one file over HTTP(S) with a checksum, and zipped data sets unpacked into the cache.

Nothing half-written is ever left where a reader looks: a download streams into a temporary file
that is renamed only after its sha256 matches, and an archive is unpacked into a temporary folder
that replaces ``<cache>/datasets/<name>`` only when every member is out and checked.
"""

from __future__ import annotations

import http.client
import logging
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from llmrec.errors import ChecksumError, DataError, NetworkError
from llmrec.fileutil import atomic_dir, atomic_file, sha256_file
from llmrec.progress import progress_bar

log = logging.getLogger(__name__)

_CHUNK = 1 << 16
_USER_AGENT = "llmrec (+https://pypi.org/project/llmrec/)"


@dataclass(frozen=True)
class RemoteDataset:
    """A zipped data set on the web: where it is, its sha256 when known, and a file to check inside."""

    url: str
    folder: str  # the zip's top-level folder, also the folder name under <cache>/datasets/
    sha256: str | None = None  # of the zip; None where the publisher gives only an md5
    check: tuple[str, str] | None = None  # (file inside the folder, its sha256)


GROUPLENS: dict[str, RemoteDataset] = {
    "ml-latest-small": RemoteDataset(
        "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
        "ml-latest-small",
        check=("ratings.csv", "80da8b3393dae325bbba5a31f291a6ba55d8d4f4396de3c456f2c1635b1b70e8"),
    ),
    "ml-100k": RemoteDataset("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "ml-100k"),
    "ml-1m": RemoteDataset("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "ml-1m"),
}
_CHECKS_BY_URL = {spec.url: spec.check for spec in GROUPLENS.values() if spec.check}


def download_file(url: str, target: str | Path, sha256: str | None, what: str, timeout: float = 30) -> Path:
    """Stream ``url`` into ``target``; with ``sha256`` the file lands only if its checksum matches.

    Raises NetworkError (one line naming the URL and the fix) when the server cannot be reached,
    answers with an HTTP error, stalls for ``timeout`` seconds or closes early, and ChecksumError
    when the bytes differ from ``sha256``; in both cases nothing is left at ``target``.
    """
    target = Path(target)
    fix = f"download {url} yourself (unzip it if zipped) and pass the folder that holds it with --data-dir"
    if urlsplit(url).scheme not in ("http", "https", "file"):
        raise NetworkError(f"cannot download {what} from {url!r}: only http(s) and file URLs are supported")
    log.info("downloading %s from %s", what, url)
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with atomic_file(target) as tmp:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
                total = _content_length(response)
                received = 0
                with progress_bar(f"downloading {what}", total=total, unit="B", unit_scale=True) as bar:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            if total is not None and received < total:
                raise NetworkError(
                    f"download of {what} from {url} stopped after {received} of {total} bytes; retry, or {fix}"
                )
        except urllib.error.HTTPError as exc:
            raise NetworkError(f"cannot download {what}: {url} answered HTTP {exc.code} {exc.reason}; {fix}") from None
        except urllib.error.URLError as exc:
            raise NetworkError(f"cannot download {what} from {url}: {_reason(exc.reason, timeout)}; {fix}") from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:  # socket.timeout is TimeoutError
            raise NetworkError(f"cannot download {what} from {url}: {_reason(exc, timeout)}; {fix}") from None
        if sha256 is not None and (actual := sha256_file(tmp)) != sha256.lower():
            raise ChecksumError(
                f"checksum mismatch for {what} ({target.name} from {url}): expected sha256 {sha256[:12]}..., "
                f"got {actual[:12]}...; nothing was kept: retry, or {fix}"
            )
    log.info("saved %s to %s", what, target)
    return target


def fetch_zip_dataset(
    url: str,
    sha256: str | None,
    cache_dir: str | Path,
    folder_name: str,
    what: str,
    check: tuple[str, str] | None = None,
    timeout: float = 30,
) -> Path:
    """Download a zip into ``<cache>/downloads/`` and unpack it as ``<cache>/datasets/<folder_name>``.

    When every member sits under one top-level folder, that folder's contents become the data set
    folder (``ml-100k.zip`` -> ``datasets/ml-100k/u.data``). ``check`` is ``(member, sha256)``, a
    file verified after unpacking; for the GroupLens URLs it defaults to the ``GROUPLENS`` entry.
    A second call finds the folder and does nothing.
    """
    cache_dir = Path(cache_dir)
    folder = cache_dir / "datasets" / folder_name
    if folder.is_dir() and any(folder.iterdir()):
        log.debug("%s already unpacked in %s", what, folder)
        return folder
    check = check or _CHECKS_BY_URL.get(url)
    archive = cache_dir / "downloads" / (PurePosixPath(urlsplit(url).path).name or f"{folder_name}.zip")
    if not (archive.is_file() and (sha256 is None or sha256_file(archive) == sha256.lower())):
        download_file(url, archive, sha256, what, timeout=timeout)
    with atomic_dir(folder) as tmp:
        _unpack(archive, tmp, what)
        if check is not None:
            _check_member(archive, tmp, check, what)
    log.info("unpacked %s into %s", what, folder)
    return folder


def _check_member(archive: Path, unpacked: Path, check: tuple[str, str], what: str) -> None:
    """Verify one unpacked file; on failure delete the archive so the next call downloads afresh."""
    member, expected = check
    path = unpacked / member
    if not path.is_file():
        archive.unlink(missing_ok=True)
        raise DataError(f"{what} archive {archive.name} has no {member} (deleted it); retry the download")
    actual = sha256_file(path)
    if actual != expected.lower():
        archive.unlink(missing_ok=True)
        raise ChecksumError(
            f"checksum mismatch for {what} {member} in {archive.name}: expected sha256 {expected[:12]}..., "
            f"got {actual[:12]}...; deleted the archive: retry the download"
        )


def _unpack(archive: Path, dest: Path, what: str) -> None:
    """Extract every member under ``dest``, refusing absolute or ``..`` paths (zip-slip)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not _is_junk(m.filename)]
            for member in members:
                parts = PurePosixPath(member.filename.replace("\\", "/")).parts
                if member.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    archive.unlink(missing_ok=True)
                    raise DataError(
                        f"{what} archive {archive} has an unsafe path {member.filename!r}; refusing to unpack it"
                    )
            strip = _common_top(members)
            for member in members:
                parts = PurePosixPath(member.filename.replace("\\", "/")).parts[strip:]
                if not parts:
                    continue
                out = dest.joinpath(*parts)
                if member.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
    except zipfile.BadZipFile:
        archive.unlink(missing_ok=True)
        raise DataError(f"{what} archive {archive} is not a zip file (deleted it); retry the download") from None


def _is_junk(name: str) -> bool:
    return name.startswith("__MACOSX/") or PurePosixPath(name).name == ".DS_Store"


def _common_top(members: list[zipfile.ZipInfo]) -> int:
    """1 when all members live under one top-level folder (strip it), else 0."""
    tops = {PurePosixPath(m.filename).parts[0] for m in members if PurePosixPath(m.filename).parts}
    nested = all(len(PurePosixPath(m.filename).parts) > 1 or m.is_dir() for m in members)
    return 1 if len(tops) == 1 and nested else 0


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _reason(reason: object, timeout: float) -> str:
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (server down or offline)"
    text = str(reason).strip() or type(reason).__name__
    return text.splitlines()[0]
