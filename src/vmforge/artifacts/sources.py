"""Where image bytes come from, the store's own part: a ``file://`` path under an import root, or a blob of a
configured Azure Blob Storage account (read with its credentials). Anything else over ``http(s)`` is downloaded
by ``vmforge.fetch`` (public addresses only unless allow-listed, redirects re-checked, size and time bounded)
under the one ``FetchPolicy`` this policy holds; its errors (``DownloadFailed``, ``ChecksumMismatch``) are the
errors of every source. A sha256, when given, is checked before the bytes are used."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from vmforge import fetch
from vmforge.artifacts.errors import ImportPathForbidden, InvalidParameter
from vmforge.disk.qemuimg import sha256_file
from vmforge.fetch import DownloadFailed, FetchPolicy, safe_url

IMAGE_MAX_BYTES = 256 * 1024**3  # disk images are larger than scripts: the store's own bounds
IMAGE_TIMEOUT = 3600.0


def image_fetch_policy() -> FetchPolicy:
    return FetchPolicy(max_bytes=IMAGE_MAX_BYTES, timeout=IMAGE_TIMEOUT)


@dataclass
class SourcePolicy:
    """Where a blobUri may read: folders for file:// (``import_roots``), Azure Blob accounts (URL prefix ->
    credential), and http(s) under ``fetch`` (its ``allow_cidrs`` are ``Settings.allow_fetch_from``)."""

    import_roots: list[Path]
    tmp_dir: Path
    blob_accounts: dict[str, object] = field(default_factory=dict)
    fetch: FetchPolicy = field(default_factory=image_fetch_policy)


def local_path(uri: str, roots: list[Path], *, target: str | None = None) -> Path:
    """The file a ``file://`` URI names, if it is a regular file inside one of ``roots`` (symlinks resolved)."""
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise InvalidParameter(f"The file URI '{safe_url(uri)}' names a remote host; use file:///path.",
                               target=target)
    path = Path(unquote(parsed.path)).resolve()
    for root in roots:
        if path.is_relative_to(root.resolve()):
            break
    else:
        allowed = ", ".join(str(r) for r in roots) or "(none configured)"
        raise ImportPathForbidden(
            f"'{path}' is outside the import roots ({allowed}); start the server with --import-root to allow "
            "another folder.", target=target)
    if not path.is_file():
        raise InvalidParameter(f"The file '{path}' does not exist or is not a regular file.", target=target)
    return path


def _account_for(uri: str, accounts: dict[str, object]) -> tuple[str, object] | None:
    for prefix, cred in accounts.items():
        if uri.startswith(prefix.rstrip("/") + "/"):
            return prefix, cred
    return None


@contextmanager
def fetched(uri: str, policy: SourcePolicy, *, sha256: str | None = None,
            target: str | None = None) -> Iterator[Path]:
    """A local path holding the bytes ``uri`` names; downloaded copies are removed on exit."""
    scheme = urlparse(uri).scheme.lower()
    if scheme == "file":
        path = local_path(uri, policy.import_roots, target=target)
        if sha256:
            fetch.check_sha256(sha256_file(path), sha256, uri, target=target)
        yield path
        return
    if scheme not in ("http", "https"):
        raise InvalidParameter(f"The URI scheme '{scheme or '(none)'}' is not supported; use file://, https:// "
                               "or an Azure Blob Storage URL.", target=target)
    tmp = policy.tmp_dir / f"dl-{uuid.uuid4().hex}"
    try:
        account = _account_for(uri, policy.blob_accounts)
        try:
            if account is not None:
                _download_blob(uri, account[1], tmp, policy.fetch)
                fetch.check_sha256(sha256_file(tmp), sha256, uri)
            else:
                fetch.download(uri, tmp, sha256=sha256, policy=policy.fetch)
        except fetch.FetchError as e:
            e.target = target
            raise
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _download_blob(uri: str, credential: object, dest: Path, policy: FetchPolicy) -> None:
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobClient

    shown = safe_url(uri)
    try:
        client = BlobClient.from_blob_url(uri, credential=credential)
        props = client.get_blob_properties()
        if props.size > policy.max_bytes:
            raise DownloadFailed(f"'{shown}' is {props.size} bytes, more than the limit of {policy.max_bytes}.")
        with open(dest, "wb") as f:
            client.download_blob(max_concurrency=4, timeout=int(policy.timeout)).readinto(f)
    except AzureError as e:
        said = re.sub(r"\?\S*", "", (str(e).splitlines() or [""])[0]) or type(e).__name__  # no query strings
        raise DownloadFailed(f"Reading the blob '{shown}' failed: {said}") from None
    if dest.stat().st_size != props.size:
        raise DownloadFailed(f"The blob '{shown}' was cut short.")
    os.chmod(dest, 0o600)
