"""Thread-safe in-memory state of one sandbox server (WeChat or WeCom).

Each server owns its own instance, so tokens issued by one are unknown to the other.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .faults import Fault, FaultBook

JsonObject = dict[str, Any]

TOKEN_TTL_SECONDS = 7200


class TokenStatus(Enum):
    VALID = "valid"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: float

    def expires_in(self) -> int:
        # Rounded up so a freshly issued token reports the full TTL, as the real APIs do.
        return max(0, math.ceil(self.expires_at - time.time()))


class SandboxState:
    def __init__(self, *, token_ttl: int = TOKEN_TTL_SECONDS) -> None:
        self._token_ttl = token_ttl
        self._lock = threading.Lock()
        self._tokens: dict[str, AccessToken] = {}
        self.faults = FaultBook()
        self._outbox: list[JsonObject] = []
        self._request_log: list[JsonObject] = []

    def reset(self) -> None:
        self.faults.reset()
        with self._lock:
            self._tokens.clear()
            self._outbox.clear()
            self._request_log.clear()

    # Access tokens

    def issue_token(self, *, reuse_valid: bool = False) -> AccessToken:
        """Mint a token; with `reuse_valid`, hand back the newest still-valid one if any."""
        with self._lock:
            now = time.time()
            if reuse_valid:
                valid = [token for token in self._tokens.values() if token.expires_at > now]
                if valid:
                    return max(valid, key=lambda token: token.expires_at)
            token = AccessToken(secrets.token_urlsafe(96), now + self._token_ttl)
            self._tokens[token.value] = token
            return token

    def token_status(self, value: str) -> TokenStatus:
        with self._lock:
            token = self._tokens.get(value)
        if token is None:
            return TokenStatus.UNKNOWN
        return TokenStatus.VALID if token.expires_at > time.time() else TokenStatus.EXPIRED

    def expire_tokens(self) -> None:
        """Make every token issued so far expired; tokens issued afterwards work normally."""
        with self._lock:
            now = time.time()
            self._tokens = {
                value: dataclasses.replace(token, expires_at=min(token.expires_at, now))
                for value, token in self._tokens.items()
            }

    # Injected faults

    def add_fault(self, path: str, fault: Fault) -> None:
        self.faults.add(path, fault)

    def take_fault(self, path: str) -> Fault | None:
        """Consume one use of the fault a request to `path` meets, if there is one."""
        return self.faults.take(path)

    # Outbox and request log

    def record_message(self, message: JsonObject) -> None:
        with self._lock:
            self._outbox.append(message)

    def messages(self) -> list[JsonObject]:
        with self._lock:
            return list(self._outbox)

    def log_request(self, entry: JsonObject) -> None:
        with self._lock:
            self._request_log.append(entry)

    def request_log(self) -> list[JsonObject]:
        with self._lock:
            return list(self._request_log)


@dataclass
class FollowUser:
    """One corp user's side of an external contact, as `externalcontact/get` lists it."""

    userid: str
    state: str
    createtime: int
    remark: str = ""
    description: str = ""
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclass
class ExternalContact:
    external_userid: str
    unionid: str
    name: str
    follow_users: dict[str, FollowUser] = dataclasses.field(default_factory=dict)


@dataclass
class CorpTagGroup:
    group_id: str
    group_name: str
    order: int
    create_time: int
    # tag id -> (name, order, create_time)
    tags: dict[str, tuple[str, int, int]] = dataclasses.field(default_factory=dict)


class WeComState(SandboxState):
    """The WeCom server's state: besides tokens and messages, a directory of corp users, contact
    ways, external contacts and customer (corp) tags.

    An empty directory accepts every userid, so that tests and demos that never set one up keep
    working; once a user is added, only listed users exist.
    """

    def __init__(self, *, token_ttl: int = TOKEN_TTL_SECONDS) -> None:
        super().__init__(token_ttl=token_ttl)
        self._users: dict[str, str] = {}
        self._contact_ways: dict[str, JsonObject] = {}
        self._external_contacts: dict[str, ExternalContact] = {}
        self._tag_groups: dict[str, CorpTagGroup] = {}
        # message/send with enable_duplicate_check: request body -> (msgid, sent at), and the repeats
        # answered from it without delivering again.
        self._recent_messages: dict[str, tuple[str, float]] = {}
        self._duplicates: list[JsonObject] = []

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._recent_messages.clear()
            self._duplicates.clear()
            self._users.clear()
            self._contact_ways.clear()
            self._external_contacts.clear()
            self._tag_groups.clear()

    # Duplicate checks of message/send

    def seen_message(self, content: str, interval: float) -> str | None:
        """The msgid of the same message sent within `interval` seconds, noting the repeat; else None."""
        with self._lock:
            seen = self._recent_messages.get(content)
            if seen is None or seen[1] < time.time() - interval:
                return None
            self._duplicates.append({"msgid": seen[0], "at": time.time()})
            return seen[0]

    def remember_message(self, content: str, msgid: str) -> None:
        with self._lock:
            self._recent_messages[content] = (msgid, time.time())

    def duplicates(self) -> list[JsonObject]:
        with self._lock:
            return list(self._duplicates)

    # The directory

    def add_users(self, users: dict[str, str]) -> None:
        """Add (or rename) corp users: userid -> name."""
        with self._lock:
            self._users.update(users)

    def users(self) -> dict[str, str]:
        with self._lock:
            return dict(self._users)

    def user_exists(self, userid: str) -> bool:
        with self._lock:
            return not self._users or userid in self._users

    # Contact ways

    def add_contact_way(self, contact_way: JsonObject) -> str:
        config_id = secrets.token_hex(16)
        with self._lock:
            self._contact_ways[config_id] = {**contact_way, "config_id": config_id}
        return config_id

    def contact_ways(self) -> list[JsonObject]:
        with self._lock:
            return [dict(way) for way in self._contact_ways.values()]

    # External contacts

    def follow(self, external: ExternalContact, userid: str, state: str) -> ExternalContact:
        """`external` adds `userid` (again): the contact exists from now on, with that follow user."""
        with self._lock:
            known = self._external_contacts.setdefault(external.external_userid, external)
            known.name = external.name or known.name
            known.follow_users[userid] = FollowUser(userid=userid, state=state, createtime=int(time.time()))
            return dataclasses.replace(known, follow_users=dict(known.follow_users))

    def unfollow(self, external_userid: str, userid: str) -> bool:
        """Drop the relation between a corp user and an external contact; False if there was none."""
        with self._lock:
            known = self._external_contacts.get(external_userid)
            if known is None or known.follow_users.pop(userid, None) is None:
                return False
            if not known.follow_users:
                del self._external_contacts[external_userid]
            return True

    def rename_external_contact(self, external_userid: str, name: str) -> bool:
        with self._lock:
            known = self._external_contacts.get(external_userid)
            if known is None:
                return False
            known.name = name
            return True

    def external_contact(self, external_userid: str) -> ExternalContact | None:
        with self._lock:
            known = self._external_contacts.get(external_userid)
            if known is None:
                return None
            follow_users = {
                userid: dataclasses.replace(user, tags=list(user.tags))
                for userid, user in known.follow_users.items()
            }
            return dataclasses.replace(known, follow_users=follow_users)

    def mark_tags(self, external_userid: str, userid: str, add: list[str], remove: list[str]) -> bool:
        """Change the tags `userid` has put on a contact; False if they are not related."""
        with self._lock:
            known = self._external_contacts.get(external_userid)
            follow_user = known.follow_users.get(userid) if known else None
            if follow_user is None:
                return False
            kept = [tag for tag in follow_user.tags if tag not in remove]
            follow_user.tags = kept + [tag for tag in dict.fromkeys(add) if tag not in kept]
            return True

    # Customer tags

    def add_tag_group(
        self, group_id: str | None, group_name: str, order: int, tags: list[JsonObject]
    ) -> CorpTagGroup:
        """Add tags to the group named `group_name` (or with `group_id`), creating it if needed."""
        now = int(time.time())
        with self._lock:
            group = self._tag_groups.get(group_id or "") or next(
                (known for known in self._tag_groups.values() if known.group_name == group_name), None
            )
            if group is None:
                group = CorpTagGroup(f"et{secrets.token_hex(11)}", group_name, order, now)
                self._tag_groups[group.group_id] = group
            existing_names = {name for name, _, _ in group.tags.values()}
            for tag in tags:
                if tag["name"] not in existing_names:
                    group.tags[f"et{secrets.token_hex(11)}"] = (tag["name"], int(tag.get("order", 0)), now)
            return dataclasses.replace(group, tags=dict(group.tags))

    def tag_groups(self) -> list[CorpTagGroup]:
        with self._lock:
            return [dataclasses.replace(group, tags=dict(group.tags)) for group in self._tag_groups.values()]

    def tag_exists(self, tag_id: str) -> bool:
        with self._lock:
            return any(tag_id in group.tags for group in self._tag_groups.values())
