"""Ask the API server what a user may do (SubjectAccessReview), as its own RBAC decides."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping

from kubernetes import client

from tokenwarden.kube._errors import translated
from tokenwarden.policies import Permission

# Well inside the admission webhook's own timeout (10 s by default in the chart).
REVIEW_TIMEOUT = 5


def is_allowed(api_client: client.ApiClient, user: Mapping, namespace: str, permission: Permission) -> bool:
    """Whether ``user`` (an admission request's userInfo: username, uid, groups, extra) holds
    ``permission`` in ``namespace``; a cluster-wide grant counts too."""
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=user.get("username"), uid=user.get("uid"), groups=user.get("groups"), extra=user.get("extra"),
        resource_attributes=client.V1ResourceAttributes(
            namespace=namespace, verb=permission.verb, group=permission.group, resource=permission.resource,
            name=permission.name or None)))
    with translated(f"SubjectAccessReview of {permission.verb} on {permission.resource}"):
        answer = client.AuthorizationV1Api(api_client).create_subject_access_review(
            review, _request_timeout=REVIEW_TIMEOUT)
    return bool(answer.status and answer.status.allowed)


async def missing_permissions(api_client: client.ApiClient, user: Mapping, namespace: str,
                              permissions: list[Permission]) -> list[Permission]:
    """Those of ``permissions`` that ``user`` lacks, asked all at once. Raises the API
    error when any review could not be made."""
    answers = await asyncio.gather(*(asyncio.to_thread(is_allowed, api_client, user, namespace, p)
                                     for p in permissions))
    return [p for p, allowed in zip(permissions, answers) if not allowed]
