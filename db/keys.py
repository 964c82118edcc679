"""API keys: create (returning the secret once), look up by secret, list and revoke."""

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from imagebatch.db.models import ApiKey, utcnow
from imagebatch.db.session import changed_rows

# A recognisable prefix lets secret scanners and people tell an imagebatch key from others.
_PREFIX = "ib_"


@dataclass(frozen=True)
class NewKey:
    id: int
    tenant: str
    name: str | None
    secret: str  # shown once; only its hash is stored


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a key's secret: what the api_keys table stores."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_key(session: Session, *, tenant: str, name: str | None = None) -> NewKey:
    """Add a key for `tenant` in the caller's transaction; the secret is not recoverable later."""
    tenant = tenant.strip()
    if not tenant or len(tenant) > 64:
        raise ValueError("tenant must be 1-64 characters")
    if name is not None and len(name) > 128:
        raise ValueError("name must be at most 128 characters")
    secret = _PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(tenant=tenant, name=name, hash=hash_secret(secret), created_at=utcnow())
    session.add(key)
    session.flush()
    return NewKey(id=key.id, tenant=tenant, name=name, secret=secret)


def tenant_for_secret(session: Session, secret: str) -> str | None:
    """The tenant of an unrevoked key with this secret, or None."""
    # Looking up by the hash means the secret itself is never compared or stored.
    return session.scalar(select(ApiKey.tenant).where(ApiKey.hash == hash_secret(secret), ApiKey.revoked_at.is_(None)))


def list_keys(session: Session, *, tenant: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if tenant:
        query = query.where(ApiKey.tenant == tenant)
    return list(session.scalars(query))


def revoke_key(session: Session, key_id: int) -> bool:
    """Revoke a key now; False if there is no such unrevoked key."""
    revoke = update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    return changed_rows(session, revoke) > 0
