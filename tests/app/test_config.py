"""Settings come from the environment; production refuses the development secrets."""

from __future__ import annotations

import pytest

from app.config import Config


def test_values_are_read_and_typed_from_the_environment() -> None:
    config = Config.from_env(
        {"MEMBER_CODE_STEP_SECONDS": "30", "REDIS_URL": "redis://cache:6379/2", "TESTING": "1"}
    )

    assert config.MEMBER_CODE_STEP_SECONDS == 30
    assert config.REDIS_URL == "redis://cache:6379/2"
    assert config.TESTING is True


def test_the_default_database_is_a_sqlite_file_under_instance() -> None:
    url = Config.from_env({}).DATABASE_URL

    assert url.startswith("sqlite:///") and url.endswith("instance/mallmember.db")


def test_production_refuses_development_secrets() -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Config.from_env({"APP_ENV": "production"})


def test_member_code_steps_longer_than_a_minute_are_refused() -> None:
    with pytest.raises(ValueError, match="MEMBER_CODE_STEP_SECONDS"):
        Config.from_env({"MEMBER_CODE_STEP_SECONDS": "300"})


def test_a_callback_aes_key_that_is_not_43_base64_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="WECOM_CALLBACK_AES_KEY"):
        Config.from_env({"WECOM_CALLBACK_AES_KEY": "too-short"})


def test_production_refuses_the_sandbox_callback_secrets() -> None:
    with pytest.raises(ValueError, match="WECOM_CALLBACK_TOKEN, WECOM_CALLBACK_AES_KEY"):
        Config.from_env({"APP_ENV": "production"})


KEY_A = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="  # 32 bytes of "A"
KEY_B = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="  # 32 bytes of "B"
REAL_SECRETS = {
    "APP_ENV": "production",
    "SECRET_KEY": "s" * 40,
    "PHONE_INDEX_KEY": "i" * 40,
    "MEMBER_CODE_SECRET": "m" * 40,
    "POS_KEY_SECRET": "p" * 40,
    "CARPARK_SIGNING_KEY": "c" * 40,
    "WECOM_CALLBACK_TOKEN": "t" * 20,
    "WECOM_CALLBACK_AES_KEY": KEY_A.rstrip("="),
}


def test_phone_key_1_is_phone_encryption_key_behind_the_listed_current_key() -> None:
    config = Config.from_env({"PHONE_ENCRYPTION_KEYS": f"2:{KEY_B}", "PHONE_ENCRYPTION_KEY": KEY_A})

    assert config.phone_encryption_keys() == ((2, KEY_B), (1, KEY_A))


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("2", "<key id 1-255>:<base64 key>"),
        ("0:" + KEY_A, "<key id 1-255>:<base64 key>"),
        ("2:c2hvcnQ=", "key 2 must be 32 bytes"),
        (f"2:{KEY_A},2:{KEY_B}", "names key 2 twice"),
    ],
)
def test_malformed_phone_key_lists_are_refused(keys: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config.from_env({"PHONE_ENCRYPTION_KEYS": keys})


def test_production_refuses_the_development_phone_key_in_the_key_list_too() -> None:
    from app.config import _DEV_PHONE_KEY

    with pytest.raises(ValueError, match="production requires real secrets for: PHONE_ENCRYPTION_KEYS"):
        Config.from_env({**REAL_SECRETS, "PHONE_ENCRYPTION_KEYS": f"2:{KEY_B},1:{_DEV_PHONE_KEY}"})
    with pytest.raises(ValueError, match=r"production requires real secrets for: PHONE_ENCRYPTION_KEY$"):
        Config.from_env(REAL_SECRETS)


def test_production_runs_on_a_key_list_alone_once_key_1_is_retired() -> None:
    config = Config.from_env({**REAL_SECRETS, "PHONE_ENCRYPTION_KEYS": f"2:{KEY_B}"})

    assert config.phone_encryption_keys() == ((2, KEY_B),)


def test_a_key_1_listed_differently_from_phone_encryption_key_is_refused() -> None:
    with pytest.raises(ValueError, match="differ"):
        Config.from_env({"PHONE_ENCRYPTION_KEYS": f"2:{KEY_B},1:{KEY_A}", "PHONE_ENCRYPTION_KEY": KEY_B})


def test_production_logs_json_lines_unless_told_otherwise() -> None:
    production = {**REAL_SECRETS, "PHONE_ENCRYPTION_KEYS": f"2:{KEY_B}"}

    assert Config.from_env(production).LOG_FORMAT == "json"
    assert Config.from_env({**production, "LOG_FORMAT": "text"}).LOG_FORMAT == "text"
    assert Config.from_env({}).LOG_FORMAT == "text"


@pytest.mark.parametrize(
    ("name", "value"),
    [("LOG_FORMAT", "xml"), ("TRUSTED_PROXY_COUNT", "-1"), ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/33")],
)
def test_serving_settings_that_cannot_work_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Config.from_env({name: value})
