"""Credentials the sandbox servers accept, configurable through the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SandboxCredentials:
    wechat_appid: str = "wxsandbox0000000001"
    wechat_secret: str = "sandbox-wechat-secret"
    wecom_corp_id: str = "wwsandbox000000001"
    wecom_secret: str = "sandbox-wecom-secret"
    wecom_agent_id: str = "1000002"
    # What the sandbox signs and encrypts the callbacks it sends with (the app's WECOM_CALLBACK_*).
    wecom_callback_token: str = "sandbox-wecom-callback-token"
    wecom_callback_aes_key: str = "ZGV2LW9ubHktd2Vjb20tY2FsbGJhY2stYWVzLWtleSE"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SandboxCredentials:
        """Read WECHAT_APPID, WECHAT_SECRET, WECOM_CORP_ID, ...; unset or empty keeps the default."""
        defaults = cls()
        return cls(
            **{
                field.name: environ.get(field.name.upper()) or getattr(defaults, field.name)
                for field in fields(cls)
            }
        )
