"""A version counter per group of reference tables, bumped by every write to them.

Processes cache the small tables operators configure (points rules, tiers, stores) and reuse
their copy for as long as the group's version is unchanged: one tiny read instead of several
wide ones on the hot paths, and an operator's edit is seen by every process at its next request.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import TABLE_OPTIONS, Base


class ReferenceVersion(Base):
    __tablename__ = "reference_versions"
    __table_args__ = TABLE_OPTIONS

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
