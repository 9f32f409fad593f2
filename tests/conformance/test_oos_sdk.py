"""The official OOS SDK (`alibabacloud-oos20190601`) against `kmsync emulator`.

The SDK's `get_secret_parameter_with_options` (version pinned in requirements.txt) sends an
RPC-style `POST /` with `Name`, `ParameterVersion`, `RegionId` and `WithDecryption` in the
query, signed by `alibabacloud-tea-openapi` like the KMS client: V3 by default, V1 with
`signature_algorithm='v2'`. The endpoint is the emulator's `127.0.0.1:<port>` over plain http.
"""

import pytest
from alibabacloud_oos20190601 import models as oos_models
from alibabacloud_oos20190601.client import Client as OosClient
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils_models import Config

from conftest import Emulator

SEED = """
access_keys:
  - {id: oos-ak, secret: oos-sk}
oos_parameters:
  - {name: /prod/db/password, versions: [first-password, second-password], key_id: key-demo, tags: {env: prod}}
  - {name: api-token, value: token-value}
"""


@pytest.fixture
def oos_emulator(tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED)
    emu = Emulator(tmp_path, tls=False, seed=seed)
    yield emu
    emu.stop()


def client(emu, sig, sk="oos-sk"):
    cfg = Config(
        access_key_id="oos-ak",
        access_key_secret=sk,
        endpoint=emu.endpoint,
        protocol=emu.protocol,
        region_id="cn-hangzhou",
    )
    if sig == "v1":
        cfg.signature_algorithm = "v2"
    return OosClient(cfg)


def get(c, name, **kw):
    return c.get_secret_parameter(
        oos_models.GetSecretParameterRequest(name=name, region_id="cn-hangzhou", **kw)
    )


@pytest.mark.parametrize("sig", ["v3", "v1"])
def test_sdk_reads_decrypted_parameters_latest_and_by_version(oos_emulator, sig):
    c = client(oos_emulator, sig)
    latest = get(c, "/prod/db/password", with_decryption=True)
    assert latest.status_code == 200
    p = latest.body.parameter
    assert (p.name, p.value, p.parameter_version) == ("/prod/db/password", "second-password", 2)
    assert p.type == "Secret"
    assert p.key_id == "key-demo"
    assert p.tags == {"env": "prod"}
    assert latest.body.request_id

    first = get(c, "/prod/db/password", with_decryption=True, parameter_version=1)
    assert (first.body.parameter.value, first.body.parameter.parameter_version) == (
        "first-password",
        1,
    )
    # Without WithDecryption the service returns no value.
    hidden = get(c, "api-token")
    assert hidden.body.parameter.value is None
    assert hidden.body.parameter.name == "api-token"

    counters = oos_emulator.counters()
    assert counters["by_action"]["GetSecretParameter"] == 3
    assert counters["authenticated_by_signature"][sig] == 3


@pytest.mark.parametrize("sig", ["v3", "v1"])
def test_sdk_sees_entity_not_exists_for_unknown_names_and_versions(oos_emulator, sig):
    c = client(oos_emulator, sig)
    for name, kw in [("/prod/missing", {}), ("api-token", {"parameter_version": 5})]:
        with pytest.raises(ClientException) as err:
            get(c, name, with_decryption=True, **kw)
        assert err.value.code == "EntityNotExists.Parameter"
        assert err.value.status_code == 404


def test_sdk_with_a_wrong_secret_is_refused(oos_emulator):
    with pytest.raises(ClientException) as err:
        get(client(oos_emulator, "v3", sk="wrong"), "api-token", with_decryption=True)
    assert err.value.code == "SignatureDoesNotMatch"
