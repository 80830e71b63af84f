"""The AI Studio SDK (`yandex-ai-studio-sdk`) against `python -m server`, plaintext and TLS.

tests/clients/ai_studio_sdk.py runs the scenario in the clients' environment and reports what
it observed; with TLS it trusts a throwaway CA made here, for gRPC and the https download alike.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support import run_client, server_process

if TYPE_CHECKING:
    from pathlib import Path

Report = dict[str, Any]

TRANSPORTS = ["plaintext", "tls"]
US_PER_DAY = 86_400 * 10**6


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A one-day CA and a server certificate it signs for localhost and 127.0.0.1:
    (CA certificate, server certificate, server key), all PEM."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("files-api test CA"))
        .issuer_name(_name("files-api test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (directory / n for n in ("ca.pem", "server.pem", "server.key"))
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture(scope="module", params=TRANSPORTS)
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Report:
    directory = tmp_path_factory.mktemp(request.param)
    store = ("--store", f"sqlite:///{directory / 'f.db'}")
    folder_id = f"folder-sdk-{request.param}"
    if request.param == "plaintext":
        with server_process(*store) as server:
            result = run_client("ai_studio_sdk.py", server.grpc_address, folder_id, timeout=90)
    else:
        ca, cert, key = make_tls_files(directory)
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
        tls = ("--tls-cert", str(cert), "--tls-key", str(key))
        with server_process(*store, *tls, credentials=credentials) as server:
            # By name for gRPC (the DNS SAN); the download links name 127.0.0.1 (the IP SAN).
            port = server.grpc_address.rpartition(":")[2]
            result = run_client(
                "ai_studio_sdk.py", f"localhost:{port}", folder_id, str(ca), timeout=90
            )
    observed: Report = json.loads(result.stdout)
    observed["transport"] = request.param
    return observed


def _expiry(file: dict[str, Any]) -> tuple[str | None, int | None]:
    return file["expiration_policy"], file["ttl_days"]


@pytest.mark.parametrize(
    ("upload", "name", "mime_type", "expiration"),
    [
        ("path", "notes.txt", "text/plain", ("SINCE_LAST_ACTIVE", 7)),
        ("path with expiration", None, "application/octet-stream", ("STATIC", 3)),
        ("bytes", "blob.bin", "application/x-sdk-blob", ("SINCE_LAST_ACTIVE", 7)),
        ("bytes with expiration", "data.json", "application/json", ("SINCE_LAST_ACTIVE", 10)),
    ],
)
def test_uploads_keep_their_metadata_and_download_byte_for_byte(
    report: Report, upload: str, name: str | None, mime_type: str, expiration: tuple[str, int]
) -> None:
    file = report["uploads"][upload]
    # The SDK reports an empty string field as None.
    assert (file["name"], file["mime_type"], _expiry(file)) == (name, mime_type, expiration)
    assert file["downloaded_hex"] == file["sent_hex"]
    assert file["created_at_us"] == file["updated_at_us"] > 0
    assert file["expires_at_us"] == file["created_at_us"] + expiration[1] * US_PER_DAY


def test_upload_from_path_keeps_description_and_labels(report: Report) -> None:
    file = report["uploads"]["path"]
    assert (file["description"], file["labels"]) == ("from a path", {"src": "path"})


# The file after each SDK update call, one field at a time; the SDK sends a mask of just that.
NAME, DESCRIPTION, LABELS = "renamed.txt", "changed description", {"src": "sdk", "stage": "two"}
AFTER_UPDATES = [
    ("name", NAME, "from a path", {"src": "path"}, ("SINCE_LAST_ACTIVE", 7)),
    ("description", NAME, DESCRIPTION, {"src": "path"}, ("SINCE_LAST_ACTIVE", 7)),
    ("labels", NAME, DESCRIPTION, LABELS, ("SINCE_LAST_ACTIVE", 7)),
    ("ttl_days", NAME, DESCRIPTION, LABELS, ("SINCE_LAST_ACTIVE", 20)),
    ("expiration_policy", NAME, DESCRIPTION, LABELS, ("STATIC", 20)),
]


@pytest.mark.parametrize(
    ("index", "expected"),
    [(i, tuple(values)) for i, (_, *values) in enumerate(AFTER_UPDATES)],
    ids=[row[0] for row in AFTER_UPDATES],
)
def test_update_of_one_field_changes_only_that_field(
    report: Report, index: int, expected: tuple[Any, ...]
) -> None:
    step = report["updates"][index]
    assert list(step["change"]) == [AFTER_UPDATES[index][0]]
    returned = step["returned"]
    assert returned == step["stored"], "the updated file differs from what files.get() returns"
    actual = (returned["name"], returned["description"], returned["labels"], _expiry(returned))
    assert actual == expected
    previous = report["updates"][index - 1]["returned"] if index else report["uploads"]["path"]
    assert returned["updated_at_us"] > previous["updated_at_us"]
    assert returned["created_at_us"] == previous["created_at_us"]


def test_expiry_follows_ttl_and_policy_updates(report: Report) -> None:
    ttl, static = (step["returned"] for step in report["updates"][3:5])
    # SINCE_LAST_ACTIVE counts from the update itself, STATIC from creation.
    assert ttl["expires_at_us"] == ttl["updated_at_us"] + 20 * US_PER_DAY
    assert static["expires_at_us"] == static["created_at_us"] + 20 * US_PER_DAY


def test_download_link_uses_the_transport_of_the_server(report: Report) -> None:
    scheme = "https" if report["transport"] == "tls" else "http"
    assert report["url"].startswith(f"{scheme}://127.0.0.1:")


def test_list_walks_every_page_to_its_natural_end(report: Report) -> None:
    listing = report["list"]
    assert listing["ended"] == "naturally", listing
    # Newest first, each file once: seven files in pages of three, then the empty page.
    assert listing["ids"] == list(reversed(report["uploaded_ids"]))
    assert report["list_calls"] == 4


def test_delete_removes_the_file(report: Report) -> None:
    assert report["get_after_delete"] == "NOT_FOUND"
    after = report["list_after_delete"]
    assert after["ended"] == "naturally", after
    assert after["ids"] == [
        i for i in reversed(report["uploaded_ids"]) if i != report["deleted_id"]
    ]
