"""The official Alibaba Cloud Python SDK against `kmsync emulator`.

What the SDK does (read from `alibabacloud_tea_openapi/client.py`, version pinned in
requirements.txt): `Client.call_api` uses `do_request` — ACS3-HMAC-SHA256 ("V3") — unless
`Config.signature_algorithm == 'v2'`, in which case RPC APIs go through `do_rpcrequest`, which
signs with HMAC-SHA1 signature version 1.0 ("V1", `Utils.get_rpcsignature`). The tests spy on
both signing functions and on the emulator's per-signature counters to prove which path ran.
"""

import base64
import json

import pytest
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_kms20160120.client import Client as KmsClient
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi.exceptions import ClientException, ThrottlingException
from alibabacloud_tea_openapi.utils import Utils
from alibabacloud_tea_openapi.utils_models import Config

AK = "quickstart"
SK = "quickstart-secret-not-real"
ROLE = "acs:ram::1234567890123456:role/kmsync-reader"
TEST1 = {"name": "tom", "friends": [{"name": "lily"}, {"name": "mark"}]}
# Our name for the signature -> the SDK's `signature_algorithm` setting.
SIGNATURES = {"v3": None, "v1": "v2"}


def config(emu, sig, ak=AK, sk=SK, token=None):
    cfg = Config(
        access_key_id=ak,
        access_key_secret=sk,
        security_token=token,
        endpoint=emu.endpoint,
        protocol=emu.protocol,
        region_id="cn-hangzhou",
    )
    if SIGNATURES[sig] is not None:
        cfg.signature_algorithm = SIGNATURES[sig]
    if emu.ca_path:
        cfg.ca = emu.ca_path
    return cfg


def kms(emu, sig, **kw):
    return KmsClient(config(emu, sig, **kw))


def get(client, name, **kw):
    return client.get_secret_value(kms_models.GetSecretValueRequest(secret_name=name, **kw))


@pytest.fixture
def signing_spy(monkeypatch):
    calls = {"v1": 0, "v3": 0}
    v1, v3 = Utils.get_rpcsignature, Utils.get_authorization

    def spy_v1(*args, **kwargs):
        calls["v1"] += 1
        return v1(*args, **kwargs)

    def spy_v3(*args, **kwargs):
        calls["v3"] += 1
        return v3(*args, **kwargs)

    monkeypatch.setattr(Utils, "get_rpcsignature", staticmethod(spy_v1))
    monkeypatch.setattr(Utils, "get_authorization", staticmethod(spy_v3))
    return calls


@pytest.mark.parametrize("sig", ["v3", "v1"])
def test_get_secret_value_returns_seeded_text_json_and_binary(emulator, signing_spy, sig):
    client = kms(emulator, sig)

    r = get(client, "test1")
    assert r.status_code == 200
    body = r.body
    assert body.secret_name == "test1"
    assert body.secret_type == "Generic"
    assert body.secret_data_type == "text"
    assert json.loads(body.secret_data) == TEST1
    assert body.version_id == "v1"
    assert body.version_stages.version_stage == ["ACSCurrent"]
    assert body.request_id
    assert body.create_time == "2024-01-01T00:00:00Z"

    plain = get(client, "plain-text").body
    assert plain.secret_data == "hello from the kmsync emulator"

    binary = get(client, "binary-blob").body
    assert binary.secret_data_type == "binary"
    assert base64.b64decode(binary.secret_data) == b"\x00\x01\x02\xfe\xffkmsync"

    rds = get(client, "rds-app", fetch_extended_config=True).body
    assert rds.secret_type == "Rds"
    assert json.loads(rds.secret_data)["AccountName"] == "app_user"
    assert json.loads(rds.extended_config)["DBInstanceId"] == "rm-uf6demo0001"
    assert rds.automatic_rotation == "Enabled"
    assert rds.rotation_interval == "604800s"

    previous = get(client, "app/database-url", version_stage="ACSPrevious").body
    assert previous.version_id == "v1"
    assert previous.secret_data == "postgres://app:old-password@db:5432/app"

    other = "v1" if sig == "v3" else "v3"
    assert signing_spy[sig] == 5 and signing_spy[other] == 0
    counters = emulator.counters()
    assert counters["authenticated_by_signature"] == {sig: 5}
    assert counters["get_secret_value_by_secret"]["test1"] == 1


@pytest.mark.parametrize("sig", ["v3", "v1"])
def test_list_secrets_pages_and_filters(emulator, sig):
    client = kms(emulator, sig)
    names = []
    for page in (1, 2, 3):
        r = client.list_secrets(
            kms_models.ListSecretsRequest(fetch_tags="true", page_number=page, page_size=2)
        ).body
        assert r.total_count == 5
        assert r.page_number == page
        names += [s.secret_name for s in r.secret_list.secret]
    assert names == ["test1", "plain-text", "binary-blob", "rds-app", "app/database-url"]

    r = client.list_secrets(
        kms_models.ListSecretsRequest(
            fetch_tags="true",
            filters=json.dumps([{"Key": "TagValue", "Values": ["prod"]}]),
        )
    ).body
    assert [s.secret_name for s in r.secret_list.secret] == ["binary-blob", "app/database-url"]
    tags = {(t.tag_key, t.tag_value) for t in r.secret_list.secret[1].tags.tag}
    assert tags == {("env", "prod"), ("app", "web")}
    assert emulator.counters()["authenticated_by_signature"] == {sig: 4}


@pytest.mark.parametrize("sig", ["v3", "v1"])
def test_describe_secret_and_list_secret_version_ids(emulator, sig):
    client = kms(emulator, sig)
    d = client.describe_secret(
        kms_models.DescribeSecretRequest(secret_name="rds-app", fetch_tags="true")
    ).body
    assert d.arn == "acs:kms:cn-hangzhou:1234567890123456:secret/rds-app"
    assert d.secret_type == "Rds"
    v = client.list_secret_version_ids(
        kms_models.ListSecretVersionIdsRequest(secret_name="app/database-url")
    ).body
    assert v.total_count == 2
    assert [(x.version_id, x.version_stages.version_stage) for x in v.version_ids.version_id] == [
        ("v1", ["ACSPrevious"]),
        ("v2", ["ACSCurrent"]),
    ]


@pytest.mark.parametrize("sig", ["v3", "v1"])
def test_a_wrong_access_key_secret_gets_signature_does_not_match(emulator, sig):
    client = kms(emulator, sig, sk="not-the-secret")
    with pytest.raises(ClientException) as err:
        get(client, "test1")
    assert err.value.code == "SignatureDoesNotMatch"
    assert err.value.status_code == 400
    assert emulator.counters()["errors_by_code"] == {"SignatureDoesNotMatch": 1}


@pytest.mark.parametrize("sig", ["v3", "v1"])
def test_an_unknown_secret_gets_resource_not_found(emulator, sig):
    with pytest.raises(ClientException) as err:
        get(kms(emulator, sig), "no-such-secret")
    assert err.value.code == "Forbidden.ResourceNotFound"
    assert err.value.status_code == 404
    assert err.value.request_id


@pytest.mark.parametrize("sig", ["v3", "v1"])
def test_sts_credentials_from_assume_role_read_secrets_until_expired(emulator, sig):
    sts = StsClient(config(emulator, sig))
    assumed = sts.assume_role(
        sts_models.AssumeRoleRequest(
            role_arn=ROLE, role_session_name="conformance", duration_seconds=900
        )
    ).body
    creds = assumed.credentials
    assert creds.access_key_id.startswith("STS.")
    assert creds.security_token
    assert creds.expiration.endswith("Z")
    assert assumed.assumed_role_user.arn.endswith(":assumed-role/kmsync-reader/conformance")

    client = kms(
        emulator,
        sig,
        ak=creds.access_key_id,
        sk=creds.access_key_secret,
        token=creds.security_token,
    )
    assert json.loads(get(client, "test1").body.secret_data) == TEST1

    assert emulator.admin("POST", "v1/sts/expire") == 200
    with pytest.raises(ClientException) as err:
        get(client, "test1")
    assert err.value.code == "InvalidAccessKeyId.NotFound"
    assert err.value.status_code == 404


@pytest.mark.parametrize("sig", ["v3", "v1"])
def test_an_expired_timestamp_is_rejected(emulator, monkeypatch, sig):
    monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: "2020-01-01T00:00:00Z"))
    with pytest.raises(ClientException) as err:
        get(kms(emulator, sig), "test1")
    assert err.value.code == "InvalidTimeStamp.Expired"
    assert err.value.status_code == 400


@pytest.mark.parametrize("sig", ["v3", "v1"])
def test_a_reused_nonce_is_rejected(emulator, monkeypatch, sig):
    monkeypatch.setattr(Utils, "get_nonce", staticmethod(lambda: f"fixed-nonce-{sig}"))
    client = kms(emulator, sig)
    assert get(client, "test1").body.version_id == "v1"
    with pytest.raises(ClientException) as err:
        get(client, "test1")
    assert err.value.code == "SignatureNonceUsed"
    assert err.value.status_code == 400


def test_throttling_with_retry_after_becomes_the_sdks_throttling_exception(emulator):
    rules = [{"kind": "throttle", "action": "GetSecretValue", "times": 1, "retry_after_ms": 1500}]
    assert emulator.admin("PUT", "v1/faults", {"rules": rules}) == 204
    client = kms(emulator, "v3")
    with pytest.raises(ThrottlingException) as err:
        get(client, "test1")
    assert err.value.code == "Rejected.Throttling"
    assert err.value.status_code == 429
    assert err.value.retry_after == 1500
    assert get(client, "test1").body.version_id == "v1"


def test_rotation_through_the_admin_api_is_visible_to_the_sdk(emulator):
    body = {"version_id": "v2", "json": {"name": "tom", "friends": []}}
    assert emulator.admin("POST", "v1/secrets/test1/versions", body) == 201
    client = kms(emulator, "v3")
    current = get(client, "test1").body
    assert (current.version_id, json.loads(current.secret_data)) == ("v2", body["json"])
    assert get(client, "test1", version_stage="ACSPrevious").body.version_id == "v1"


@pytest.mark.parametrize("sig", ["v3", "v1"])
def test_tls_with_the_pinned_ca(tls_emulator, sig):
    assert tls_emulator.protocol == "https"
    assert json.loads(get(kms(tls_emulator, sig), "test1").body.secret_data) == TEST1
