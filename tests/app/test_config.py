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
