"""Microsoft's own login: azure-identity's ClientSecretCredential gets a token from vmforge's issuer (MSAL reads
its OpenID configuration), and the Azure SDK works with it — including the RBAC refusals."""

from __future__ import annotations

import uuid

import pytest

from tests.api.test_http import body as template_body
from tests.conftest import SUBSCRIPTION, Server, imagebuilder_client
from tests.identity.helpers import cli, tenant


def credential(server: Server, app_id: str, secret: str):  # noqa: ANN201
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(tenant(server), app_id, secret, authority=f"127.0.0.1:{server.port}",
                                  disable_instance_discovery=True, connection_verify=server.cert)


def sdk(server: Server, cred) -> object:  # noqa: ANN001
    from azure.mgmt.imagebuilder import ImageBuilderClient

    return ImageBuilderClient(cred, SUBSCRIPTION, base_url=server.url, connection_verify=server.cert, retry_total=0)


def test_client_secret_credential_logs_in_and_drives_the_sdk(server: Server) -> None:

    sp = cli(server, "principal", "create", "sdk", "--role", "Contributor", "--scope", f"/subscriptions/{SUBSCRIPTION}")
    cred = credential(server, sp["appId"], sp["password"])
    token = cred.get_token("https://management.azure.com/.default")
    assert token.token.count(".") == 2 and token.expires_on > 0
    client = sdk(server, cred)
    group = f"rg-sdk-{uuid.uuid4().hex[:6]}"
    server.ensure_group(SUBSCRIPTION, group)
    body = template_body()  # with an identity of the caller's subscription, which a Contributor there may assign
    body["identity"]["userAssignedIdentities"] = {server.ensure_identity(SUBSCRIPTION, group, "sdk-id")["id"]: {}}
    t = client.virtual_machine_image_templates.begin_create_or_update(group, "viaentra", body).result()
    assert t.provisioning_state == "Succeeded"
    names = [x.name for x in client.virtual_machine_image_templates.list_by_resource_group(group)]
    assert names == ["viaentra"]
    client.virtual_machine_image_templates.begin_delete(group, "viaentra").result()


def test_sdk_reader_is_refused_with_authorization_failed(server: Server) -> None:
    from azure.core.exceptions import HttpResponseError

    sp = cli(server, "principal", "create", "sdk-reader", "--role", "Reader", "--scope",
             f"/subscriptions/{SUBSCRIPTION}")
    client = sdk(server, credential(server, sp["appId"], sp["password"]))
    # Reader lists the subscription's templates: exactly what the bootstrap admin (Owner) sees, one it just made
    # included.
    admin = imagebuilder_client(server).virtual_machine_image_templates
    group = f"rg-sdk-{uuid.uuid4().hex[:6]}"
    server.ensure_group(SUBSCRIPTION, group)
    made = admin.begin_create_or_update(group, "visible", template_body()).result()
    seen = sorted(t.id for t in client.virtual_machine_image_templates.list())
    assert made.id in seen and seen == sorted(t.id for t in admin.list())
    admin.begin_delete(group, "visible").result()
    with pytest.raises(HttpResponseError) as e:
        client.virtual_machine_image_templates.begin_create_or_update(
            "rg", "nope", template_body()).result()
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"


def test_wrong_secret_fails_at_login(server: Server) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    sp = cli(server, "principal", "create", "sdk-wrong")
    with pytest.raises(ClientAuthenticationError):
        credential(server, sp["appId"], "not-the-secret").get_token("https://management.azure.com/.default")
