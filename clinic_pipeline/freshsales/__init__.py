"""The Freshsales HTTP client: auth, pacing, retries, pagination, typed errors, payload models."""

from clinic_pipeline.freshsales.client import FreshsalesClient
from clinic_pipeline.freshsales.errors import (
    AuthenticationError,
    FreshsalesError,
    JobTimeoutError,
    NetworkError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    UnreadableAnswerError,
    ValidationError,
    ViewNotFoundError,
)
from clinic_pipeline.freshsales.models import (
    FieldDefinition,
    JobStatus,
    ListMeta,
    ModuleCustomization,
    Owner,
    User,
    ViewFilter,
    coerce_id,
    money_field,
    parse_money,
)
from clinic_pipeline.freshsales.ratelimit import RateLimiter
from clinic_pipeline.freshsales.retry import RetryPolicy

__all__ = [
    "AuthenticationError",
    "FieldDefinition",
    "FreshsalesClient",
    "FreshsalesError",
    "JobStatus",
    "JobTimeoutError",
    "ListMeta",
    "ModuleCustomization",
    "NetworkError",
    "NotFoundError",
    "OutcomeUnknownError",
    "Owner",
    "PermissionDeniedError",
    "RateLimitedError",
    "RateLimiter",
    "RetryPolicy",
    "ServerError",
    "UnreadableAnswerError",
    "User",
    "ValidationError",
    "ViewFilter",
    "ViewNotFoundError",
    "coerce_id",
    "money_field",
    "parse_money",
]
