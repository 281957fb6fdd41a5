"""AccessDeniedException messages in AWS's current form (section 6.9)."""

from __future__ import annotations

from openkms.authz.model import AccessRequest, Decision, Denial

_KIND = {
    Denial.NO_RESOURCE_ALLOW: "resource-based",
    Denial.NO_IDENTITY_ALLOW: "identity-based",
    Denial.EXPLICIT_DENY_RESOURCE: "resource-based",
    Denial.EXPLICIT_DENY_IDENTITY: "identity-based",
}


def access_denied_message(request: AccessRequest, decision: Decision) -> str:
    """``User: <arn> is not authorized to perform: kms:<Action> on resource: <resource> because ...``."""
    action = f"kms:{request.action}"
    head = (
        f"User: {request.principal.arn} is not authorized to perform: {action} "
        f"on resource: {request.resource}"
    )
    denial = decision.denial or Denial.NO_RESOURCE_ALLOW
    kind = _KIND[denial]
    if denial in (Denial.EXPLICIT_DENY_RESOURCE, Denial.EXPLICIT_DENY_IDENTITY):
        article = "an" if kind == "identity-based" else "a"
        return f"{head} with an explicit deny in {article} {kind} policy"
    return f"{head} because no {kind} policy allows the {action} action"
