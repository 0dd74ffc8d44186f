"""The one client TLS context: verification always on, the system trust found lazily."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tui_mail.core import tls
from tui_mail.core.errors import ConfigError


@pytest.fixture(autouse=True)
def fresh_lookup() -> None:
    tls._hashed_system_dir.cache_clear()


def test_the_context_verifies_certificates_and_host_names() -> None:
    ctx = tls.client_context()
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.check_hostname
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2


def test_a_hashed_system_directory_is_read_lazily(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "0a1b2c3d.0").write_text("")
    paths = ssl.get_default_verify_paths()
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: paths._replace(capath=str(certs)))
    monkeypatch.delenv(paths.openssl_cafile_env, raising=False)
    assert tls._hashed_system_dir() == str(certs)
    # SSL_CERT_FILE naming the system's own bundle changes nothing.
    tls._hashed_system_dir.cache_clear()
    monkeypatch.setenv(paths.openssl_cafile_env, paths.openssl_cafile)
    assert tls._hashed_system_dir() == str(certs)
    # The bundle was not parsed: nothing is loaded until a handshake asks.
    assert tls.client_context().cert_store_stats()["x509_ca"] == 0


@pytest.mark.parametrize("case", ["no hashed names", "SSL_CERT_FILE", "no directory"])
def test_otherwise_openssl_defaults_are_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca-bundle.crt").write_text("")
    paths = ssl.get_default_verify_paths()
    capath = None if case == "no directory" else str(certs)
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: paths._replace(capath=capath))
    if case == "SSL_CERT_FILE":
        (certs / "0a1b2c3d.0").write_text("")
        monkeypatch.setenv(paths.openssl_cafile_env, str(tmp_path / "my-bundle.pem"))
    assert tls._hashed_system_dir() is None
    loaded: list[bool] = []
    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", lambda self: loaded.append(True))
    tls.client_context()
    assert loaded == [True]


def test_an_unreadable_ca_file_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        tls.client_context(tmp_path / "missing.pem", "accounts.a.receive.ca_file")
    assert info.value.key == "accounts.a.receive.ca_file"
    assert "missing.pem" in str(info.value)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError):
        tls.client_context(bad)
