from __future__ import annotations

import kopf
from kubernetes import client

from tokenwarden.config import Settings
from tokenwarden.kube import load_api_client


class OperatorMemo(kopf.Memo):
    """What every handler shares: the settings and one API client."""

    settings: Settings
    core: client.CoreV1Api
    custom: client.CustomObjectsApi

    @classmethod
    def create(cls, settings: Settings) -> OperatorMemo:
        api = load_api_client()
        memo = cls()
        memo.settings = settings
        memo.core = client.CoreV1Api(api)
        memo.custom = client.CustomObjectsApi(api)
        return memo
