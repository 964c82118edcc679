"""API-key authentication: every /v1 request is made by a tenant (or by nobody when auth is off)."""

import logging
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from imagebatch.core.config import settings
from imagebatch.db.keys import tenant_for_secret
from imagebatch.db.session import session_scope

logger = logging.getLogger(__name__)

# auto_error=False: our own 401 (with WWW-Authenticate) rather than FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="an API key from `imagebatch keys create`")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="imagebatch"'})


def require_tenant(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str | None:
    """The tenant of the request's API key; None when IMAGEBATCH_AUTH_ENABLED is false."""
    if not settings.AUTH_ENABLED:
        return None
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing API key: send `Authorization: Bearer <key>` (see `imagebatch keys create`)")
    # Its own short transaction, not the request's session: a submission's route then streams
    # its upload holding no pooled connection (a crowd of uploads would otherwise drain the pool).
    with session_scope() as session:
        tenant = tenant_for_secret(session, credentials.credentials)
    if tenant is None:
        raise _unauthorized("invalid or revoked API key")
    return tenant


TenantDep = Annotated[str | None, Depends(require_tenant)]
