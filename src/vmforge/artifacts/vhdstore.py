"""Where exported VHDs go: a directory (default) or an Azure Blob Storage account, as page blobs like Azure
wants VHDs (Azurite works too). Both return the blob's URI, which is what AIB reports as ``artifactUri``.

The Blob SDK's URLs carry the credential when it is a SAS (``?sv=…&sig=…``): the URIs returned and the account
URL shown in messages have no query string, and a failing Blob call becomes a ``BlobStoreError`` whose message
is the service's first line, redacted — it reaches a run's status and log, and API clients."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from vmforge.artifacts.errors import InvalidParameter
from vmforge.errors import ArmError
from vmforge.events import redact
from vmforge.fetch import safe_url

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,1023}$")
_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")


def _check(container: str, name: str) -> None:
    if not _CONTAINER.match(container):
        raise InvalidParameter(f"Invalid container name '{container}'.", target="container")
    if not _NAME.match(name) or ".." in name.split("/"):
        raise InvalidParameter(f"Invalid blob name '{name}'.", target="name")


class BlobStoreError(ArmError):
    """An Azure Blob Storage call failed (authentication, network, the service's refusal)."""

    status = 502
    code = "BlobStorageError"


def _blob_error(action: str, url: str, e: Exception) -> BlobStoreError:
    said = redact((str(e).strip().splitlines() or [""])[0]) or type(e).__name__
    return BlobStoreError(f"{action} '{safe_url(url)}' failed: {said}")


class VhdStore(Protocol):
    def put(self, path: Path, container: str, name: str) -> str: ...

    def get(self, uri: str, dest: Path) -> Path: ...


class DirectoryVhdStore:
    """``<root>/<container>/<name>``; URIs are ``file://`` URLs."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def put(self, path: Path, container: str, name: str) -> str:
        _check(container, name)
        dest = self.root / container / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            try:
                os.link(path, tmp)  # same file system: no copy
            except OSError:
                shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest.as_uri()

    def get(self, uri: str, dest: Path) -> Path:
        src = Path(unquote(urlparse(uri).path)).resolve()
        if not src.is_relative_to(self.root) or not src.is_file():
            raise InvalidParameter(f"'{uri}' is not a blob of this store.", target="uri")
        shutil.copyfile(src, dest)
        return dest


class AzureBlobVhdStore:
    """Page blobs in an Azure Blob Storage account (connection string, or account URL + credential)."""

    def __init__(self, connection_string: str | None = None, *, account_url: str | None = None,
                 credential: object = None, max_concurrency: int = 4) -> None:
        from azure.storage.blob import BlobServiceClient

        if connection_string:
            self.service = BlobServiceClient.from_connection_string(connection_string)
        elif account_url:
            self.service = BlobServiceClient(account_url, credential=credential)
        else:
            raise ValueError("give a connection string or an account URL")
        self.max_concurrency = max_concurrency

    @property
    def account_url(self) -> str:
        """The account's URL without its credential (a SAS is part of the SDK's ``url``)."""
        return safe_url(self.service.url).rstrip("/")

    def put(self, path: Path, container: str, name: str) -> str:
        from azure.core.exceptions import AzureError, ResourceExistsError
        from azure.storage.blob import BlobType, ContentSettings

        _check(container, name)
        size = path.stat().st_size
        if size % 512:
            raise InvalidParameter("A page blob's size must be a multiple of 512 bytes.", target="path")
        blob = self.service.get_blob_client(container, name)
        try:
            try:
                self.service.create_container(container)
            except ResourceExistsError:
                pass
            with open(path, "rb") as f:
                # The SDK skips all-zero 4 MiB pages of a page blob: a sparse VHD uploads only its data.
                blob.upload_blob(f, blob_type=BlobType.PAGEBLOB, length=size, overwrite=True,
                                 max_concurrency=self.max_concurrency,
                                 content_settings=ContentSettings(content_type="application/octet-stream"))
        except AzureError as e:
            raise _blob_error("Uploading to", blob.url, e) from None
        return safe_url(blob.url)

    def get(self, uri: str, dest: Path) -> Path:
        from azure.storage.blob import BlobClient

        parsed = urlparse(uri)
        container, _, name = unquote(parsed.path).lstrip("/").partition("/")
        if self.service.account_name and container == self.service.account_name:  # path-style (Azurite) URLs
            container, _, name = name.partition("/")
        from azure.core.exceptions import AzureError

        blob: BlobClient = self.service.get_blob_client(container, name)
        try:
            with open(dest, "wb") as f:
                blob.download_blob(max_concurrency=self.max_concurrency).readinto(f)
        except AzureError as e:
            raise _blob_error("Reading", blob.url, e) from None
        return dest
