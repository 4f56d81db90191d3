"""Secrets in real Blob errors (Azurite on loopback, SAS and account-key credentials) never reach a returned
URI, an error message (what a run's status and log store), an API error body or a logged traceback."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.artifacts.test_azurite import DEV_ACCOUNT, DEV_KEY, azurite  # noqa: F401 (the fixture)
from vmforge.artifacts.vhdstore import AzureBlobVhdStore, BlobStoreError
from vmforge.identity.logredact import RedactingFilter

BEARER = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA"
CLIENT_SECRET = "Zx9~clientSecretValue.1234567890abcdefgh"


def sas_connection(conn: str, *, tamper: bool = False) -> tuple[str, str]:
    """A SAS connection string for Azurite's account (a real, valid signature unless ``tamper``) and its sig."""
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    sas = generate_account_sas(DEV_ACCOUNT, DEV_KEY, ResourceTypes(service=True, container=True, object=True),
                               AccountSasPermissions(read=True, write=True, create=True, add=True, list=True),
                               expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    if tamper:
        sas = sas.replace("sig=", "sig=TAMPERED")
    sig = sas.split("sig=")[1].split("&")[0]
    endpoint = conn.split("BlobEndpoint=")[1].rstrip(";")
    return f"BlobEndpoint={endpoint};SharedAccessSignature={sas}", sig


def page_file(tmp: Path) -> Path:
    p = tmp / "disk.vhd"
    p.write_bytes(b"\1" * 4096)
    return p


def secrets_of(sig: str) -> list[str]:
    from urllib.parse import unquote

    return [sig, unquote(sig), DEV_KEY, DEV_KEY[:20]]


def test_a_sas_never_shows_in_the_uri_or_the_error(azurite: str, tmp_path: Path) -> None:  # noqa: F811
    good, sig = sas_connection(azurite)
    uri = AzureBlobVhdStore(good).put(page_file(tmp_path), "vhds", "redact/ok.vhd")
    assert "?" not in uri and not any(s in uri for s in secrets_of(sig)) and uri.endswith("/vhds/redact/ok.vhd")
    bad, bad_sig = sas_connection(azurite, tamper=True)
    with pytest.raises(BlobStoreError) as e:
        AzureBlobVhdStore(bad).put(page_file(tmp_path), "vhds", "redact/bad.vhd")
    msg = e.value.message
    assert "failed: Server failed to authenticate" in msg and "/vhds/redact/bad.vhd" in msg
    assert not any(s in msg for s in secrets_of(bad_sig)) and "?" not in msg


def test_the_vhd_distributor_keeps_the_sas_out_of_the_run(azurite: str, tmp_path: Path,  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Its messages become the run's status and log line: the account URL the SDK gives carries the SAS."""
    from vmforge.disk import qemuimg
    from vmforge.events import RunEvents
    from vmforge.kinds.base import BuildError, Context
    from vmforge.kinds.distributors.vhd import VhdStep

    bad, sig = sas_connection(azurite, tamper=True)
    monkeypatch.setenv("VMFORGE_BLOB_CONNECTION_STRING", bad)
    image = tmp_path / "built.qcow2"
    qemuimg.convert(page_file(tmp_path), image, "qcow2", src_fmt="raw")
    events = RunEvents(tmp_path / "customization.log")
    ctx = Context(run_id=1, work_dir=tmp_path, data_dir=tmp_path, events=events, template={}, template_name="t",
                  template_location="westus", cancel_requested=lambda: False, fetch=None, artifacts=None,
                  os_type="Linux")
    ctx.state["image_path"] = image
    account = azurite.split("BlobEndpoint=")[1].rstrip(";")
    for uri, error in ((f"https://elsewhere.example/vhds/x.vhd?sig={sig}", BuildError),
                       (f"{account}/vhds/run/x.vhd", BlobStoreError)):
        step = VhdStep("vhd", {"runOutputName": "out", "uri": uri})
        with pytest.raises(error) as e:
            step.run(ctx)
        msg = getattr(e.value, "message", None) or str(e.value)
        events.line(f"VHD \"out\" failed: {msg}", "VHD")
        assert not any(s in msg for s in secrets_of(sig)), msg
    events.close()
    log = (tmp_path / "customization.log").read_text()
    assert "failed" in log and not any(s in log for s in secrets_of(sig))


def test_logged_tracebacks_are_redacted(azurite: str, tmp_path: Path) -> None:  # noqa: F811
    """A failing Blob upload logged with its traceback, the exception quoting the SDK's URL (with the SAS), the
    connection string (with the account key), a bearer token and a client secret."""
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobServiceClient

    bad, sig = sas_connection(azurite, tamper=True)
    log_file = tmp_path / "server.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("vmforge.test-redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        blob = BlobServiceClient.from_connection_string(bad).get_blob_client("vhds", "tb.vhd")
        try:
            try:
                blob.upload_blob(b"\0" * 512, blob_type="PageBlob", length=512, overwrite=True)
            except AzureError as e:
                raise RuntimeError(f"upload to {blob.url} failed ({azurite}); headers "
                                   f"{{'Authorization': 'Bearer {BEARER}', 'client_secret': '{CLIENT_SECRET}'}}") from e
        except RuntimeError:
            logger.exception("distributor crashed")
    finally:
        handler.close()
        logger.removeHandler(handler)
    text = log_file.read_text()
    assert "distributor crashed" in text and "RuntimeError: upload to" in text and "Traceback" in text
    for secret in [*secrets_of(sig), BEARER, BEARER.split(".")[1], CLIENT_SECRET]:
        assert secret not in text, secret


def test_api_error_bodies_are_redacted() -> None:
    import json

    from vmforge.api.errors import cloud_error
    from vmforge.errors import ArmError, ErrorDetail

    err = ArmError(f"Reading https://a.blob.core.windows.net/c/b.vhd?sv=1&sig=SIGSECRET failed; "
                   f"AccountName=a;AccountKey={DEV_KEY};", details=[ErrorDetail("X", f"Bearer {BEARER}")], status=401)
    r = cloud_error(err)
    text = r.body.decode() + json.dumps(dict(r.headers))
    for secret in ("SIGSECRET", DEV_KEY, BEARER):
        assert secret not in text
    assert json.loads(r.body)["error"]["message"].startswith("Reading https://a.blob.core.windows.net/c/b.vhd?")
