"""The official Alibaba Cloud credential clients against `kmsync emulator`, and kmsync's own
client obtaining the same credentials.

* `alibabacloud_sts20150401` (versions pinned in requirements.txt): `AssumeRole` (signed) and
  `AssumeRoleWithOIDC` (`auth_type='Anonymous'`, parameters in the query).
* `alibabacloud_credentials` providers: `RamRoleArnCredentialsProvider` (signs `AssumeRole`
  itself with HMAC-SHA1 over GET), `OIDCRoleArnCredentialsProvider` (reads the token file) and
  `EcsRamRoleCredentialsProvider` (IMDSv2 token, role name, credentials). The first two always
  use `https://<sts_endpoint>`, so they talk to an emulator with `--tls` and the tests hand the
  emulator's CA to `Tea.core.TeaCore.do_action` (its `ca` runtime option); the ECS provider's
  fixed host `100.100.100.200` is replaced by the emulator's `--metadata-listen` address.
* The credentials they obtain read a KMS secret with the official KMS client, and
  `kmsync kms get-secret-value` obtains its own from the same sources (OIDC environment, CLI
  profile, instance role) and reads the same secret.
"""

import json
import os
import pathlib
import subprocess

import pytest
from alibabacloud_credentials.provider import (
    EcsRamRoleCredentialsProvider,
    OIDCRoleArnCredentialsProvider,
    RamRoleArnCredentialsProvider,
)
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_kms20160120.client import Client as KmsClient
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils_models import Config
from Tea.core import TeaCore

from conftest import Emulator, kmsync_bin

SEED = pathlib.Path(__file__).resolve().parent / "credentials-seed.yaml"
AK = "conformance-ak"
SK = "conformance-secret-not-real"
ROLE = "acs:ram::1234567890123456:role/app-reader"
PROVIDER = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-conformance"
SUBJECT = "system:serviceaccount:conformance:app"


@pytest.fixture
def emu(tmp_path):
    e = Emulator(tmp_path, tls=True, seed=SEED, extra_args=["--metadata-listen", "127.0.0.1:0"])
    yield e
    e.stop()


@pytest.fixture
def trust_emulator_ca(monkeypatch, emu):
    """Makes Tea's `do_action` (used by the credential providers) verify with the emulator CA."""
    original = TeaCore.do_action

    def do_action(request, runtime_option=None):
        runtime_option = dict(runtime_option or {})
        runtime_option["ca"] = emu.ca_path
        return original(request, runtime_option)

    monkeypatch.setattr(TeaCore, "do_action", staticmethod(do_action))


def mint(emu, subject=SUBJECT, **extra) -> str:
    body = {"provider_arn": PROVIDER, "subject": subject, **extra}
    return emu.admin_json("POST", "v1/oidc/token", body)["token"]


def config(emu, ak=None, sk=None, token=None) -> Config:
    return Config(
        access_key_id=ak,
        access_key_secret=sk,
        security_token=token,
        endpoint=emu.endpoint,
        protocol=emu.protocol,
        region_id="cn-hangzhou",
        ca=emu.ca_path,
    )


def read_with(emu, ak, sk, token, name="app/config") -> str:
    client = KmsClient(config(emu, ak, sk, token))
    return client.get_secret_value(kms_models.GetSecretValueRequest(secret_name=name)).body.secret_data


def test_the_official_sts_client_assumes_a_role_with_an_oidc_token(emu):
    sts = StsClient(config(emu))
    r = sts.assume_role_with_oidc(
        sts_models.AssumeRoleWithOIDCRequest(
            role_arn=ROLE,
            oidcprovider_arn=PROVIDER,
            oidctoken=mint(emu),
            role_session_name="conformance",
            duration_seconds=900,
        )
    ).body
    creds = r.credentials
    assert creds.access_key_id.startswith("STS.")
    assert r.assumed_role_user.arn == "acs:ram::1234567890123456:assumed-role/app-reader/conformance"
    assert r.oidctoken_info.subject == SUBJECT
    assert r.oidctoken_info.issuer == "https://oidc-ack-cn-hangzhou.test/conformance"
    assert read_with(emu, creds.access_key_id, creds.access_key_secret, creds.security_token) == "conformance-value"
    counters = emu.counters()
    assert counters["by_action"]["AssumeRoleWithOIDC"] == 1
    # Only the KMS call was signed.
    assert sum(counters["authenticated_by_signature"].values()) == 1


@pytest.mark.parametrize(
    "token_args, code",
    [
        ({"expires_in_seconds": -60}, "AuthenticationFail.OIDCToken.Expired"),
        ({"audience": ["kubernetes"]}, "AuthenticationFail.OIDCToken.AudienceNotMatch"),
        ({"subject": "system:serviceaccount:other:app"}, "AuthenticationFail.NoPermission"),
    ],
)
def test_the_official_sts_client_gets_the_documented_oidc_error_codes(emu, token_args, code):
    sts = StsClient(config(emu))
    with pytest.raises(ClientException) as err:
        sts.assume_role_with_oidc(
            sts_models.AssumeRoleWithOIDCRequest(
                role_arn=ROLE,
                oidcprovider_arn=PROVIDER,
                oidctoken=mint(emu, **token_args),
                role_session_name="conformance",
            )
        )
    assert err.value.code == code
    assert err.value.status_code == 401


def test_a_revoked_role_is_reported_to_the_official_client(emu):
    assert emu.admin("POST", "v1/roles/revoke", {"role_arn": ROLE, "mode": "delete"}) == 204
    sts = StsClient(config(emu, AK, SK))
    with pytest.raises(ClientException) as err:
        sts.assume_role(sts_models.AssumeRoleRequest(role_arn=ROLE, role_session_name="conformance"))
    assert (err.value.code, err.value.status_code) == ("EntityNotExist.Role", 404)


def test_the_ram_role_arn_provider_assumes_the_role(emu, trust_emulator_ca):
    provider = RamRoleArnCredentialsProvider(
        access_key_id=AK,
        access_key_secret=SK,
        role_arn=ROLE,
        role_session_name="conformance",
        sts_endpoint=emu.endpoint,
    )
    c = provider.get_credentials()
    assert c.get_access_key_id().startswith("STS.")
    assert c.get_provider_name() == "ram_role_arn/static_ak"
    assert read_with(emu, c.get_access_key_id(), c.get_access_key_secret(), c.get_security_token()) == "conformance-value"
    # The role's allowed_secrets apply.
    with pytest.raises(ClientException) as err:
        read_with(emu, c.get_access_key_id(), c.get_access_key_secret(), c.get_security_token(), "not-for-roles")
    assert err.value.code == "Forbidden.NoPermission"
    assert emu.counters()["authenticated_by_signature"]["v1"] == 1, "the provider signs AssumeRole with V1"


def test_the_oidc_provider_reads_the_token_file(emu, trust_emulator_ca, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(mint(emu))
    provider = OIDCRoleArnCredentialsProvider(
        role_arn=ROLE,
        oidc_provider_arn=PROVIDER,
        oidc_token_file_path=str(token_file),
        role_session_name="conformance",
        sts_endpoint=emu.endpoint,
    )
    c = provider.get_credentials()
    assert c.get_provider_name() == "oidc_role_arn"
    assert read_with(emu, c.get_access_key_id(), c.get_access_key_secret(), c.get_security_token()) == "conformance-value"


def test_the_ecs_ram_role_provider_reads_the_metadata_server(emu):
    host = emu.metadata_url.split("://", 1)[1].rstrip("/")
    provider = EcsRamRoleCredentialsProvider(async_update_enabled=False)
    # The provider only knows 100.100.100.200; point it at the emulator's metadata listener.
    provider._EcsRamRoleCredentialsProvider__metadata_service_host = host
    c = provider.get_credentials()
    assert c.get_provider_name() == "ecs_ram_role"
    assert c.get_access_key_id().startswith("STS.")
    assert read_with(emu, c.get_access_key_id(), c.get_access_key_secret(), c.get_security_token()) == "conformance-value"
    m = emu.counters()["metadata_requests"]
    assert m["token"] >= 1 and m["role-name"] == 1 and m["credentials"] == 1


def test_the_ecs_ram_role_provider_fails_when_the_server_is_down(emu):
    assert emu.admin("PUT", "v1/metadata", {"mode": "error", "status": 500}) == 204
    host = emu.metadata_url.split("://", 1)[1].rstrip("/")
    provider = EcsRamRoleCredentialsProvider(async_update_enabled=False)
    provider._EcsRamRoleCredentialsProvider__metadata_service_host = host
    with pytest.raises(Exception) as err:
        provider.get_credentials()
    assert "HttpCode=500" in str(err.value)


def kmsync_get(emu, env, *extra):
    """`kmsync kms get-secret-value` with only `env` (no inherited ALIBABA_CLOUD_* variables)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    return subprocess.run(
        [
            kmsync_bin(), "kms", "get-secret-value",
            "--endpoint", emu.kms_url, "--ca-file", emu.ca_path,
            "--sts-endpoint", emu.kms_url,
            "--secret-name", "app/config", "--show-value", *extra,
        ],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kmsync_obtains_the_same_credentials_from_the_oidc_environment(emu, trust_emulator_ca, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(mint(emu))
    env = {
        "HOME": str(tmp_path),
        "ALIBABA_CLOUD_ROLE_ARN": ROLE,
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": PROVIDER,
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file),
    }
    # The official provider with the same settings (it reads these variables at import time, so
    # they are passed explicitly here).
    official = OIDCRoleArnCredentialsProvider(
        role_arn=env["ALIBABA_CLOUD_ROLE_ARN"],
        oidc_provider_arn=env["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"],
        oidc_token_file_path=env["ALIBABA_CLOUD_OIDC_TOKEN_FILE"],
        sts_endpoint=emu.endpoint,
    ).get_credentials()
    assert official.get_access_key_id().startswith("STS.")

    out = kmsync_get(emu, env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["SecretData"] == "conformance-value"
    assert emu.counters()["by_action"]["AssumeRoleWithOIDC"] == 2, "one session each"
    assert "eyJ" not in out.stderr, "the token never appears in kmsync's output"


def test_kmsync_obtains_credentials_from_a_cli_profile_and_the_instance_role(emu, tmp_path):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({
        "current": "conformance",
        "profiles": [{
            "name": "conformance", "mode": "RamRoleArn",
            "access_key_id": AK, "access_key_secret": SK, "ram_role_arn": ROLE,
        }],
    }))
    out = kmsync_get(emu, {"HOME": str(tmp_path), "ALIBABA_CLOUD_CONFIG_FILE": str(config_file)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["SecretData"] == "conformance-value"
    assert emu.counters()["by_action"]["AssumeRole"] == 1

    # Nothing configured: refused unless the worker role is enabled.
    out = kmsync_get(emu, {"HOME": str(tmp_path / "empty")})
    assert out.returncode != 0
    assert "nothing is configured" in out.stderr
    out = kmsync_get(
        emu, {"HOME": str(tmp_path / "empty")},
        "--enable-worker-role", "--metadata-url", emu.metadata_url.rstrip("/"),
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["SecretData"] == "conformance-value"
    assert emu.counters()["metadata_requests"]["credentials"] == 1
