"""The official KMS instance SDK (`alibabacloud-dkms-gcs`) against `kmsync emulator`.

What the SDK does (read from `openapi/client.py`, `openapi_util/client.py` and
`openapi_credential/client.py`, version pinned in requirements.txt): it loads the ClientKey
PKCS#12 with pyOpenSSL, sends `POST https://<endpoint>/` with a protobuf body, the `x-kms-*`
headers (`x-kms-acccesskeyid`, sic) and `authorization: Bearer <RSA-SHA256 signature>`, sets
the `host` header to the configured endpoint, and verifies TLS against `ca_file_path` (requests).
To reach the emulator on loopback *and* keep TLS host name checks meaningful, the endpoint is a
real-looking instance host (`kst-….cryptoservice.kms.aliyuncs.com:<port>`) that the test
resolves to 127.0.0.1 by patching `socket.getaddrinfo`; the emulator's certificate covers
`*.cryptoservice.kms.aliyuncs.com`.
"""

import base64
import datetime
import json
import socket

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from openapi.models import Config
from sdk import models as dkms_models
from sdk.client import Client
from Tea.exceptions import TeaException

from conftest import Emulator

INSTANCE_HOST = "kst-conformance0001.cryptoservice.kms.aliyuncs.com"
PASSWORD = "conformance-pw"


def make_client_key(key_id: str, legacy: bool):
    """An RSA key, a self-signed certificate and the ClientKey JSON (PKCS#12, base64)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key_id)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    if legacy:
        # What OpenSSL 1.x and the console's files use: 3DES with an HMAC-SHA1 MAC.
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())
            .build(PASSWORD.encode())
        )
    else:
        encryption = serialization.BestAvailableEncryption(PASSWORD.encode())
    p12 = pkcs12.serialize_key_and_certificates(key_id.encode(), key, cert, None, encryption)
    content = json.dumps({"KeyId": key_id, "PrivateKeyData": base64.b64encode(p12).decode()})
    return content, cert.public_bytes(serialization.Encoding.PEM).decode()


def seed_yaml(client_keys):
    lines = [
        "secrets:",
        "  - {name: instance-text, text: instance-value}",
        "  - {name: instance-bin, binary_base64: AAEC/w==}",
        "  - name: instance-rotating",
        "    versions:",
        "      - {id: v1, text: old, stages: [ACSPrevious]}",
        "      - {id: v2, text: new, stages: [ACSCurrent]}",
        "client_keys:",
    ]
    for key_id, pem in client_keys:
        if pem is None:
            lines.append(f"  - {{key_id: {key_id}}}")
        else:
            indented = "\n".join("      " + line for line in pem.strip().splitlines())
            lines.append(f"  - key_id: {key_id}\n    certificate_pem: |\n{indented}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def resolve_instance_host(monkeypatch):
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if host == INSTANCE_HOST:
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def start(tmp_path, client_keys, extra_args=()):
    seed = tmp_path / "seed.yaml"
    seed.write_text(seed_yaml(client_keys))
    return Emulator(tmp_path, tls=True, seed=seed, extra_args=extra_args)


def sdk_client(emu, **key):
    port = emu.endpoint.rsplit(":", 1)[1]
    cfg = Config(
        protocol="https",
        endpoint=f"{INSTANCE_HOST}:{port}",
        ca_file_path=emu.ca_path,
        **key,
    )
    return Client(cfg)


def get(client, name, **kw):
    return client.get_secret_value(dkms_models.GetSecretValueRequest(secret_name=name, **kw))


@pytest.mark.parametrize("legacy", [True, False], ids=["pkcs12-3des", "pkcs12-aes"])
def test_sdk_reads_secrets_with_a_client_key_it_made_pinning_the_emulator_ca(
    tmp_path, resolve_instance_host, legacy
):
    content, pem = make_client_key("KAAP.conformance", legacy)
    emu = start(tmp_path, [("KAAP.conformance", pem)])
    try:
        client = sdk_client(emu, client_key_content=content, password=PASSWORD)
        r = get(client, "instance-text")
        assert r.secret_name == "instance-text"
        assert r.secret_data == "instance-value"
        assert r.secret_data_type == "text"
        assert r.version_id == "v1"
        assert list(r.version_stages) == ["ACSCurrent"]
        assert r.request_id

        b = get(client, "instance-bin")
        assert b.secret_data_type == "binary"
        assert base64.b64decode(b.secret_data) == b"\x00\x01\x02\xff"

        prev = get(client, "instance-rotating", version_stage="ACSPrevious")
        assert (prev.version_id, prev.secret_data) == ("v1", "old")
        by_id = get(client, "instance-rotating", version_id="v2")
        assert by_id.secret_data == "new"

        with pytest.raises(TeaException) as err:
            get(client, "no-such-secret")
        assert err.value.code == "Forbidden.ResourceNotFound"
        assert err.value.data["httpCode"] == 404

        counters = emu.counters()
        assert counters["authenticated_by_signature"]["client_key"] == 5
        assert counters["errors_by_code"]["Forbidden.ResourceNotFound"] == 1
    finally:
        emu.stop()


def test_sdk_reads_with_the_client_key_the_emulator_wrote(tmp_path, resolve_instance_host):
    key_file = tmp_path / "clientKey_KAAP.emulator.json"
    emu = start(
        tmp_path,
        [("KAAP.emulator", None)],
        extra_args=["--write-client-key", f"KAAP.emulator={key_file}"],
    )
    try:
        password = (tmp_path / "clientKey_KAAP.emulator.json.password").read_text()
        client = sdk_client(emu, client_key_file=str(key_file), password=password)
        assert get(client, "instance-text").secret_data == "instance-value"
    finally:
        emu.stop()


def test_a_client_key_the_instance_does_not_know_is_refused(tmp_path, resolve_instance_host):
    content, _ = make_client_key("KAAP.known", legacy=True)
    _, other_pem = make_client_key("KAAP.other", legacy=True)
    # The instance holds another key's certificate under this KeyId.
    emu = start(tmp_path, [("KAAP.known", other_pem)])
    try:
        client = sdk_client(emu, client_key_content=content, password=PASSWORD)
        with pytest.raises(TeaException) as err:
            get(client, "instance-text")
        assert err.value.code == "SignatureNotMatch"
        assert err.value.data["httpCode"] == 401

        stranger, _ = make_client_key("KAAP.stranger", legacy=True)
        client = sdk_client(emu, client_key_content=stranger, password=PASSWORD)
        with pytest.raises(TeaException) as err:
            get(client, "instance-text")
        assert err.value.code == "Unauthorized"
        assert err.value.data["httpCode"] == 404
    finally:
        emu.stop()


@pytest.mark.parametrize("legacy", [True, False], ids=["pkcs12-3des", "pkcs12-aes"])
def test_kmsync_cli_reads_client_keys_made_by_the_cryptography_package(tmp_path, legacy):
    """The reverse direction: kmsync's own ClientKey loader and signer, fed a PKCS#12 that
    `cryptography` wrote (OpenSSL's legacy 3DES and its current AES-256 default)."""
    import subprocess

    from conftest import kmsync_bin

    content, pem = make_client_key("KAAP.cli", legacy)
    emu = start(tmp_path, [("KAAP.cli", pem)])
    try:
        (tmp_path / "ck.json").write_text(content)
        (tmp_path / "ck.password").write_text(PASSWORD + "\n")
        port = emu.endpoint.rsplit(":", 1)[1]
        out = subprocess.run(
            [
                kmsync_bin(), "kms", "get-secret-value",
                "--endpoint", f"https://{INSTANCE_HOST}:{port}",
                "--resolve", f"{INSTANCE_HOST}=127.0.0.1:{port}",
                "--client-key-file", str(tmp_path / "ck.json"),
                "--client-key-password-file", str(tmp_path / "ck.password"),
                "--ca-file", emu.ca_path,
                "--secret-name", "instance-text", "--show-value",
            ],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["SecretData"] == "instance-value"

        (tmp_path / "ck.password").write_text("wrong\n")
        bad = subprocess.run(
            [
                kmsync_bin(), "kms", "get-secret-value",
                "--endpoint", f"https://{INSTANCE_HOST}:{port}",
                "--client-key-file", str(tmp_path / "ck.json"),
                "--client-key-password-file", str(tmp_path / "ck.password"),
                "--ca-file", emu.ca_path, "--secret-name", "instance-text",
            ],
            capture_output=True, text=True, timeout=60,
        )
        assert bad.returncode == 1
        assert "wrong password for client key KAAP.cli" in bad.stderr
        assert PASSWORD not in bad.stderr
    finally:
        emu.stop()
