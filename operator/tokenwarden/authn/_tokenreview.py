"""Ask kube-apiserver whether a Kubernetes token is valid: one TokenReview (authentication.k8s.io/v1)."""
from __future__ import annotations

from collections.abc import Sequence

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from tokenwarden.authn._workload import Review, ReviewUnavailable


class KubeReviewer:
    """The TokenReview API of the authenticator's own API server."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api = client.AuthenticationV1Api(api_client)

    def __call__(self, token: str, audiences: Sequence[str]) -> Review:
        body = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=list(audiences)))
        try:
            answer = self.api.create_token_review(body, _request_timeout=10)
        except ApiException as exc:
            raise ReviewUnavailable(f"kube-apiserver answered {exc.status} {exc.reason}") from None
        except (HTTPError, OSError) as exc:
            raise ReviewUnavailable(f"kube-apiserver could not be reached: {type(exc).__name__}") from None
        status = answer.status
        user = status.user if status else None
        return Review(authenticated=bool(status and status.authenticated),
                      username=(user.username or "") if user else "",
                      audiences=tuple(status.audiences or ()) if status else (),
                      error=(status.error or "") if status else "")
