"""Where image bytes come from: a ``file://`` path under an import root, an ``http(s)://`` URL (downloaded by
``vmforge.fetch`` — public addresses only unless allow-listed, with a size and a time bound — and verified against
a sha256 when one is given), or a blob of a configured Azure Blob
Storage account (read with its credentials)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from vmforge.artifacts.errors import ChecksumMismatch, DownloadFailed, ImportPathForbidden, InvalidParameter

_CHUNK = 1 << 20


@dataclass
class FetchPolicy:
    """Limits on where and how much a blobUri may read."""

    import_roots: list[Path]
    tmp_dir: Path
    max_bytes: int = 256 * 1024**3
    timeout: float = 3600.0
    blob_accounts: dict[str, object] = field(default_factory=dict)  # account URL prefix -> credential
    # CIDRs http(s) URLs may reach although private or loopback (vmforge.fetch; Settings.allow_fetch_from)
    allow_cidrs: list = field(default_factory=list)


def local_path(uri: str, roots: list[Path], *, target: str | None = None) -> Path:
    """The file a ``file://`` URI names, if it is a regular file inside one of ``roots`` (symlinks resolved)."""
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise InvalidParameter(f"The file URI '{uri}' names a remote host; use file:///path.", target=target)
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
def fetched(uri: str, policy: FetchPolicy, *, sha256: str | None = None,
            target: str | None = None) -> Iterator[Path]:
    """A local path holding the bytes ``uri`` names; downloaded copies are removed on exit."""
    scheme = urlparse(uri).scheme.lower()
    if scheme == "file":
        path = local_path(uri, policy.import_roots, target=target)
        if sha256:
            _verify(path, sha256, target)
        yield path
        return
    if scheme not in ("http", "https"):
        raise InvalidParameter(f"The URI scheme '{scheme or '(none)'}' is not supported; use file://, https:// "
                               "or an Azure Blob Storage URL.", target=target)
    tmp = policy.tmp_dir / f"dl-{uuid.uuid4().hex}"
    try:
        account = _account_for(uri, policy.blob_accounts)
        if account is not None:
            _download_blob(uri, account[1], tmp, policy, target)
        else:
            _download_http(uri, tmp, policy, target)
        if sha256:
            _verify(tmp, sha256, target)
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _verify(path: Path, expected: str, target: str | None) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    if h.hexdigest() != expected.lower():
        raise ChecksumMismatch(f"The sha256 of the downloaded file is {h.hexdigest()}, expected {expected.lower()}.",
                               target=target)


def _download_http(uri: str, dest: Path, policy: FetchPolicy, target: str | None) -> None:
    """Through ``vmforge.fetch``: checked addresses only, redirects re-checked, size and time bounded."""
    from vmforge import fetch

    try:
        fetch.download(uri, dest, policy=fetch.FetchPolicy(allow_cidrs=list(policy.allow_cidrs),
                                                           max_bytes=policy.max_bytes, timeout=policy.timeout))
    except fetch.FetchError as e:
        e.target = target
        raise


def _download_blob(uri: str, credential: object, dest: Path, policy: FetchPolicy, target: str | None) -> None:
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobClient

    try:
        client = BlobClient.from_blob_url(uri, credential=credential)
        props = client.get_blob_properties()
        if props.size > policy.max_bytes:
            raise DownloadFailed(f"{uri} is larger than the limit of {policy.max_bytes} bytes.", target=target)
        with open(dest, "wb") as f:
            client.download_blob(max_concurrency=4, timeout=int(policy.timeout)).readinto(f)
    except AzureError as e:
        raise DownloadFailed(f"Reading the blob {uri} failed: {e}", target=target) from None
    if dest.stat().st_size != props.size:
        raise DownloadFailed(f"The blob {uri} was cut short.", target=target)
    os.chmod(dest, 0o600)
