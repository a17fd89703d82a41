"""The sign-off gate: no full migration without an accepted sample diff for the current confirmed plan.

`clinic-pipeline sign-off --by NAME` records who accepted which sample diff (its hash) for which
confirmed plan (its hash). A corrected plan has a new hash: the sample is migrated again and signed
again before the full run.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from clinic_pipeline.errors import OperatorError


class SignOffRequiredError(OperatorError):
    """The full migration waits for a signed-off sample diff of exactly this plan."""


class SignOff(BaseModel):
    signed_by: str
    signed_at: datetime
    plan_hash: str
    diff_hash: str


def record_sign_off(path: Path, *, by: str, plan_hash: str, diff_hash: str) -> SignOff:
    if not by.strip():
        raise OperatorError("a sign-off needs a name (--by NAME)")
    sign_off = SignOff(signed_by=by.strip(), signed_at=datetime.now(UTC), plan_hash=plan_hash, diff_hash=diff_hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(sign_off.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return sign_off


def read_sign_off(path: Path) -> SignOff | None:
    return SignOff.model_validate(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None


def require_sign_off(path: Path, plan_hash: str) -> SignOff:
    sign_off = read_sign_off(path)
    if sign_off is None:
        raise SignOffRequiredError(
            "no signed-off sample diff: run `clinic-pipeline migrate --sample 200`, review the diff, "
            "then `clinic-pipeline sign-off --by NAME`"
        )
    if sign_off.plan_hash != plan_hash:
        raise SignOffRequiredError(
            "the sample diff was signed off for another version of the plan: migrate the sample again "
            "(`clinic-pipeline migrate --sample 200`) and sign off again"
        )
    return sign_off
