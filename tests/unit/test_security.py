"""Tokens, the webhook address policy, secrets in settings, and the Kafka security mapping: pure rules."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import ssl
from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import SecretStr, ValidationError

from tracker.errors import AuthenticationError, AuthorizationError, ConfigurationError, WebhookTargetRefused
from tracker.kafka.client_config import client_options, faust_credentials, tls_arguments
from tracker.security import (
    AddressPolicy,
    TokenSet,
    address_category,
    bearer_token,
    check_webhook_url,
    parse_digests,
    parse_tokens,
)
from tracker.settings import Settings

pytestmark = pytest.mark.unit

TOKEN = "tok-writer-0123456789abcdef"
OTHER = "tok-reader-fedcba9876543210"
PASSWORD = "sasl-pass-never-printed"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def settings(**values: object) -> Settings:
    """Build settings from keyword values (the fixture below keeps TRACKER_* variables out)."""
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_tracker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's TRACKER_* variables out of these settings."""
    for name in [name for name in os.environ if name.startswith("TRACKER_")]:
        monkeypatch.delenv(name)


# --- tokens -------------------------------------------------------------------------------------------------


def test_a_token_set_accepts_plain_tokens_and_digests_and_nothing_else() -> None:
    tokens = TokenSet.from_config(SecretStr(TOKEN), SecretStr(sha256_hex(OTHER)))

    assert tokens.enabled
    assert tokens.accepts(TOKEN)
    assert tokens.accepts(OTHER)
    assert not tokens.accepts(TOKEN + "x")
    assert not tokens.accepts(sha256_hex(OTHER))


def test_no_configured_token_means_an_open_api() -> None:
    assert not TokenSet.from_config(None, None).enabled


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", f"Bearer {TOKEN} extra", TOKEN, "Token abc"]
)
def test_a_missing_or_malformed_header_is_an_authentication_error(header: str | None) -> None:
    tokens = TokenSet.from_config(SecretStr(TOKEN), None)

    with pytest.raises(AuthenticationError, match="missing bearer token"):
        tokens.authorize(header)


def test_a_wrong_token_is_an_authorization_error_that_does_not_echo_it() -> None:
    tokens = TokenSet.from_config(SecretStr(TOKEN), None)

    with pytest.raises(AuthorizationError) as raised:
        tokens.authorize(f"Bearer {OTHER}")

    assert str(raised.value) == "token not accepted"


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"  BEARER   {TOKEN} "])
def test_the_bearer_scheme_is_case_insensitive(header: str) -> None:
    assert bearer_token(header) == TOKEN
    TokenSet.from_config(SecretStr(TOKEN), None).authorize(header)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no token"),
        ("x9y8z7", "shorter than 16"),
        (f"{TOKEN},tiny", "token 2 is shorter"),
        ("has space inside it, really", "token 1 is shorter|characters"),
        ("ünïcödé-token-that-is-long", "characters a bearer token cannot carry"),
    ],
)
def test_unusable_tokens_are_refused_without_quoting_them(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as raised:
        parse_tokens(text)

    for part in text.split(","):
        if part.strip():
            assert part.strip() not in str(raised.value)


def test_digests_must_be_sha256_hex() -> None:
    assert parse_digests(f"{sha256_hex(TOKEN)}, {sha256_hex(OTHER).upper()}") == (
        hashlib.sha256(TOKEN.encode()).digest(),
        hashlib.sha256(OTHER.encode()).digest(),
    )
    with pytest.raises(ValueError, match="digest 2 is not 64 hexadecimal digits"):
        parse_digests(f"{sha256_hex(TOKEN)},abc")


# --- secrets in settings --------------------------------------------------------------------------------------


def secret_settings() -> Settings:
    return settings(
        api_tokens=TOKEN,
        api_token=OTHER,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="tracker",
        kafka_sasl_password=PASSWORD,
    )


def test_repr_and_str_of_settings_show_no_secret() -> None:
    built = secret_settings()

    for text in (repr(built), str(built), f"{built}", repr(built.model_dump())):
        assert TOKEN not in text
        assert OTHER not in text
        assert PASSWORD not in text


def test_as_env_hands_secrets_to_child_processes_in_clear() -> None:
    env = secret_settings().as_env()

    assert env["TRACKER_API_TOKENS"] == TOKEN
    assert env["TRACKER_API_TOKEN"] == OTHER
    assert env["TRACKER_KAFKA_SASL_PASSWORD"] == PASSWORD
    assert env["TRACKER_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"


def test_settings_rebuilt_from_as_env_are_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    built = secret_settings()
    for name, value in built.as_env().items():
        monkeypatch.setenv(name, value)

    again = Settings()

    assert again.as_env() == built.as_env()


def test_an_invalid_token_setting_is_reported_without_its_value() -> None:
    with pytest.raises(ValidationError) as raised:
        settings(api_tokens="s3cr3t-x9y8z7")

    assert "api_tokens" in str(raised.value)
    assert "s3cr3t-x9y8z7" not in str(raised.value)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"read_requires_token": True}, "read_requires_token needs"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"}, "needs kafka_sasl_username and"),
        ({"kafka_sasl_username": "u", "kafka_sasl_password": PASSWORD}, "SASL credentials are set but"),
        ({"kafka_ssl_cafile": "/ca.pem"}, "TLS files are set but"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/k.pem"}, "need kafka_ssl_certfile"),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
        ({"webhook_allow": "10.0.0.0/8, not a host!"}, "neither a host name"),
        ({"api_token_sha256": "beef"}, "not 64 hexadecimal"),
    ],
)
def test_inconsistent_security_settings_are_refused(values: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason) as raised:
        settings(**values)

    assert PASSWORD not in str(raised.value)


def test_protocol_and_mechanism_are_case_insensitive() -> None:
    built = settings(
        kafka_security_protocol="sasl_plaintext",
        kafka_sasl_mechanism="scram-sha-256",
        kafka_sasl_username="u",
        kafka_sasl_password=PASSWORD,
    )

    assert (built.kafka_security_protocol, built.kafka_sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-256")


# --- Kafka security mapping -----------------------------------------------------------------------------------


def test_plaintext_clients_get_only_the_bootstrap_servers_and_the_protocol() -> None:
    assert client_options(settings(kafka_bootstrap="k1:9092,k2:9092")) == {
        "bootstrap_servers": "k1:9092,k2:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert faust_credentials(settings()) is None


def test_sasl_plaintext_passes_mechanism_and_credentials_without_tls() -> None:
    built = settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="tracker",
        kafka_sasl_password=PASSWORD,
    )

    assert client_options(built) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "tracker",
        "sasl_plain_password": PASSWORD,
    }


def test_sasl_ssl_adds_a_verifying_tls_context() -> None:
    built = settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="tracker", kafka_sasl_password=PASSWORD)

    options = client_options(built)

    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "PLAIN"


@pytest.mark.parametrize(
    "values",
    [
        {"kafka_security_protocol": "SSL"},
        {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u", "kafka_sasl_password": PASSWORD},
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-256",
            "kafka_sasl_username": "u",
            "kafka_sasl_password": PASSWORD,
        },
    ],
    ids=["ssl", "sasl-plaintext", "sasl-ssl-scram"],
)
def test_the_faust_app_gets_the_same_connection_as_the_aiokafka_clients(values: dict[str, object]) -> None:
    built = settings(**values)

    # What Faust's aiokafka driver derives from the credentials we give it.
    faust_side = dict(credentials_to_aiokafka_auth(faust_credentials(built)))
    ours = client_options(built)

    assert set(ours) - {"bootstrap_servers"} == {key for key, value in faust_side.items() if value is not None}
    assert {k: v for k, v in faust_side.items() if k != "ssl_context" and v is not None} == {
        k: v for k, v in ours.items() if k not in {"ssl_context", "bootstrap_servers"}
    }
    assert isinstance(faust_side.get("ssl_context"), ssl.SSLContext) == ("ssl_context" in ours)


def test_the_faust_credentials_repr_shows_no_password() -> None:
    built = settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password=PASSWORD)

    assert PASSWORD not in repr(faust_credentials(built))


def test_tls_files_map_to_create_ssl_context_arguments() -> None:
    built = settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile="/etc/tracker/ca.pem",
        kafka_ssl_certfile="/etc/tracker/client.pem",
        kafka_ssl_keyfile="/etc/tracker/client.key",
        kafka_ssl_key_password="key-pass",
    )

    assert tls_arguments(built) == {
        "cafile": "/etc/tracker/ca.pem",
        "certfile": "/etc/tracker/client.pem",
        "keyfile": "/etc/tracker/client.key",
        "password": "key-pass",
    }


def test_a_missing_ca_file_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    built = settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(missing))

    with pytest.raises(ConfigurationError, match="cannot load the Kafka TLS files"):
        client_options(built)


# --- webhook address policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "not globally routable"),
        ("2002:7f00:1::", "loopback"),
        ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),
        ("8.8.8.8", None),
        ("::ffff:8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_addresses_are_classified(address: str, category: str | None) -> None:
    assert address_category(ipaddress.ip_address(address)) == category


def test_an_empty_policy_refuses_every_non_public_literal_and_metadata_name() -> None:
    policy = AddressPolicy()

    assert policy.host_refusal("127.0.0.1") == "127.0.0.1 is loopback"
    assert policy.host_refusal("[::1]") == "::1 is loopback"
    assert policy.host_refusal("Metadata.Google.Internal.") == "metadata.google.internal is a cloud metadata host"
    assert policy.host_refusal("93.184.215.14") is None
    assert policy.host_refusal("hooks.example.com") is None  # names are checked once resolved


def test_the_allow_list_takes_addresses_cidrs_and_host_names() -> None:
    policy = AddressPolicy.parse("127.0.0.1, 10.0.0.0/8, [::1], Receiver.Internal.")

    assert policy.host_refusal("127.0.0.1") is None
    assert policy.host_refusal("127.0.0.2") == "127.0.0.2 is loopback"
    assert policy.address_refusal("hooks.corp", "10.20.30.40") is None
    assert policy.address_refusal("hooks.corp", "192.168.0.1") == "hooks.corp resolves to 192.168.0.1, which is private"
    assert policy.host_refusal("::1") is None
    assert policy.address_refusal("receiver.internal", "172.16.0.9") is None


def test_a_metadata_address_is_allowed_only_when_listed_exactly() -> None:
    broad = AddressPolicy.parse("169.254.0.0/16")
    exact = AddressPolicy.parse("169.254.169.254")

    assert broad.host_refusal("169.254.1.1") is None
    assert broad.host_refusal("169.254.169.254") == "169.254.169.254 is a cloud metadata address"
    assert exact.host_refusal("169.254.169.254") is None


class FakeResolver:
    """Answer lookups from a table; record what was asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if host not in self.answers:
            raise OSError(f"no such host {host}")
        return self.answers[host]


async def test_a_public_host_passes_after_resolving_it() -> None:
    resolve = FakeResolver({"hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]})

    await check_webhook_url("https://hooks.example.com/alerts", AddressPolicy(), resolve)

    assert resolve.asked == [("hooks.example.com", 443)]


@pytest.mark.parametrize(
    ("url", "answers", "reason"),
    [
        ("http://hooks.corp:8080/x", {"hooks.corp": ["10.0.0.5"]}, "hooks.corp resolves to 10.0.0.5, which is private"),
        ("http://mixed.example/x", {"mixed.example": ["93.184.215.14", "127.0.0.1"]}, "127.0.0.1, which is loopback"),
        ("http://127.0.0.1:9000/hook", {}, "127.0.0.1 is loopback"),
        ("http://[fd00:ec2::254]/latest", {}, "a cloud metadata address"),
        ("http://metadata.google.internal/computeMetadata/v1/", {}, "cloud metadata host"),
        ("http://nowhere.invalid/x", {}, "cannot resolve host nowhere.invalid"),
        ("https://user:pw@hooks.example.com/x", {"hooks.example.com": ["93.184.215.14"]}, "carries credentials"),
    ],
)
async def test_a_refused_target_names_the_reason(url: str, answers: dict[str, list[str]], reason: str) -> None:
    with pytest.raises(WebhookTargetRefused, match=reason) as raised:
        await check_webhook_url(url, AddressPolicy(), FakeResolver(answers))

    if "resolve" not in reason and "credentials" not in reason:
        assert str(raised.value).startswith("address not allowed: ")
        assert "TRACKER_WEBHOOK_ALLOW" in str(raised.value)


async def test_literals_and_allow_listed_names_are_not_looked_up() -> None:
    resolve = FakeResolver({})
    policy = AddressPolicy.parse("127.0.0.1,receiver.internal")

    await check_webhook_url("http://127.0.0.1:8080/hook", policy, resolve)
    await check_webhook_url("http://receiver.internal/hook", policy, resolve)

    assert resolve.asked == []
