"""Per-credential metrics against the real API server: the operator's timestamps and rotation and
restart counters, the authenticator's verifications per credential (bounded) and its index's
last sync, each series gone with its credential."""
from __future__ import annotations

import time
from pathlib import Path

from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AuthenticatorProcess

from .kubehelpers import GROUP, VERSION, create, phase_is, wait_for
from .test_authenticator import _eventually
from .test_rotation import _daemonset, _secret

LOCKED = {"metrics-test/locked": "true"}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value, from a /metrics page."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def series(name: str, namespace: str, kind: str, credential: str, **extra) -> tuple[str, tuple]:
    labels = {"namespace": namespace, "kind": kind, "name": credential, **extra}
    return name, tuple(sorted(labels.items()))


def _epoch(stamp: str) -> float:
    from tokenwarden.policies import parse_time

    return parse_time(stamp).timestamp()


def _lock_updates(api_client, namespace: str) -> str:
    """A ValidatingAdmissionPolicy that refuses updates of objects labelled metrics-test/locked in
    ``namespace``: a Secret the rotation cannot write, a DaemonSet it cannot restart."""
    admission = client.AdmissionregistrationV1Api(api_client)
    name = f"locked-{namespace}"
    admission.create_validating_admission_policy({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [
                     {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["secrets"]},
                     {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"],
                      "resources": ["daemonsets"]}]},
                 "validations": [{"expression": "false", "message": "locked by the metrics test"}]}})
    admission.create_validating_admission_policy_binding({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"],
                 "matchResources": {
                     "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                     "objectSelector": {"matchLabels": LOCKED}}}})
    return name


def _unlock(api_client, name: str) -> None:
    admission = client.AdmissionregistrationV1Api(api_client)
    admission.delete_validating_admission_policy_binding(name)
    admission.delete_validating_admission_policy(name)


def _locked_daemonset(api_client, namespace: str, name: str) -> None:
    _daemonset(api_client, namespace, name)
    client.AppsV1Api(api_client).patch_namespaced_daemon_set(name, namespace, {"metadata": {"labels": LOCKED}})


def _rotate(custom, kind_plural: str, namespace: str, name: str, request: str) -> None:
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, kind_plural, name,
                                          {"metadata": {"annotations": {"tokenwarden.io/rotate": request}}})


def _refused(api_client, namespace: str, name: str) -> bool:
    try:
        client.AppsV1Api(api_client).patch_namespaced_daemon_set(
            name, namespace, {"metadata": {"annotations": {"metrics-test/probe": str(time.monotonic())}}})
    except client.ApiException as exc:
        return exc.status in (403, 422)
    return False


def test_operator_series_per_credential(operator, api_client, custom, namespace):
    _daemonset(api_client, namespace, "agent")
    _locked_daemonset(api_client, namespace, "locked-agent")
    policy = _lock_updates(api_client, namespace)
    try:
        # The API server takes the policy up a moment after it is created.
        assert _eventually(lambda: _refused(api_client, namespace, "locked-agent"))
        create(custom, "ServiceToken", namespace, "rolling", {
            "roles": ["writer"], "ttl": "30d",
            "rotation": {"renewBefore": "1d", "restartTargets": [
                {"kind": "DaemonSet", "name": "agent"}, {"kind": "Deployment", "name": "missing"},
                {"kind": "DaemonSet", "name": "locked-agent"}]}})
        create(custom, "ServiceToken", namespace, "stuck", {
            "roles": ["writer"], "ttl": "30d", "rotation": {"renewBefore": "1d"},
            "secretTemplate": {"labels": LOCKED}})
        create(custom, "IngestionAPIKey", namespace, "plain", {"ttl": "10d"})
        rolling = wait_for(custom, "ServiceToken", namespace, "rolling", phase_is("Active"))
        wait_for(custom, "ServiceToken", namespace, "stuck", phase_is("Active"))
        plain = wait_for(custom, "IngestionAPIKey", namespace, "plain", phase_is("Active"))

        expires = _epoch(rolling["status"]["expiresAt"])
        expiration = series("tokenwarden_credential_expiration_timestamp_seconds", namespace, "ServiceToken",
                            "rolling")
        plain_expiration = series("tokenwarden_credential_expiration_timestamp_seconds", namespace,
                                  "IngestionAPIKey", "plain")

        def caught_up() -> dict | None:
            # The series follow the operator's watch, which shows its own status writes a moment
            # after the API server does.
            found = samples(operator.metrics())
            return found if found.get(expiration) == expires and plain_expiration in found else None

        found = _eventually(caught_up, timeout=30)
        assert found, f"the credentials' series never showed:\n{operator.metrics()}"
        assert found[expiration] == expires
        assert found[series("tokenwarden_credential_next_rotation_timestamp_seconds", namespace, "ServiceToken",
                            "rolling")] == expires - 86400
        assert found[series("tokenwarden_credential_created_timestamp_seconds", namespace, "ServiceToken",
                            "rolling")] == _epoch(rolling["metadata"]["creationTimestamp"])
        assert found[series("tokenwarden_credential_expiration_timestamp_seconds", namespace, "IngestionAPIKey",
                            "plain")] == _epoch(plain["status"]["expiresAt"])
        # No rotation configured, never used: no such series.
        assert series("tokenwarden_credential_next_rotation_timestamp_seconds", namespace, "IngestionAPIKey",
                      "plain") not in found
        assert series("tokenwarden_credential_last_used_timestamp_seconds", namespace, "IngestionAPIKey",
                      "plain") not in found
        # No label holds a token or its hash.
        secret = _secret(client.CoreV1Api(api_client), namespace, "rolling")["token"]
        text = operator.metrics()
        assert secret not in text and rolling["status"]["tokenHash"].split(":")[1][:12] not in text

        _rotate(custom, "servicetokens", namespace, "rolling", "one")
        _rotate(custom, "servicetokens", namespace, "stuck", "one")
        rotated = wait_for(custom, "ServiceToken", namespace, "rolling",
                           lambda o: o["status"].get("rotationRequest") == "one")

        def counted() -> dict | None:
            found = samples(operator.metrics())
            wanted = {
                ("rotations", "rolling", "rotated"): 1, ("restarts", "rolling", "restarted"): 1,
                ("restarts", "rolling", "not_found"): 1, ("restarts", "rolling", "failed"): 1,
            }
            for (counter, name, result), value in wanted.items():
                if found.get(series(f"tokenwarden_credential_{counter}_total", namespace, "ServiceToken", name,
                                    result=result)) != value:
                    return None
            if not found.get(series("tokenwarden_credential_rotations_total", namespace, "ServiceToken", "stuck",
                                    result="failed")):
                return None
            if found.get(expiration) != _epoch(rotated["status"]["expiresAt"]):
                return None  # the successor's status not yet seen by the operator's watch
            return found

        found = _eventually(counted, timeout=30)
        assert found, f"rotation and restart counters never showed:\n{operator.metrics()}"
        # The timestamps follow the rotation: the successor's expiry.
        assert found[series("tokenwarden_credential_expiration_timestamp_seconds", namespace, "ServiceToken",
                            "rolling")] == _epoch(rotated["status"]["expiresAt"])
        assert series("tokenwarden_credential_rotations_total", namespace, "ServiceToken", "stuck",
                      result="rotated") not in found
    finally:
        _unlock(api_client, policy)

    # Deleted: every series of the credential goes.
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "servicetokens", "rolling")
    gone = _eventually(lambda: 'name="rolling"' not in operator.metrics())
    assert gone, [line for line in operator.metrics().splitlines() if 'name="rolling"' in line]
    assert 'name="plain"' in operator.metrics()


def test_authenticator_series_per_credential(cluster, operator, authenticator, custom, core, namespace,
                                             tmp_path: Path):
    create(custom, "IngestionAPIKey", namespace, "shipper", {"ttl": "1h", "project": "shop"})
    create(custom, "IngestionAPIKey", namespace, "other", {"ttl": "1h"})
    wait_for(custom, "IngestionAPIKey", namespace, "shipper", phase_is("Active"))
    wait_for(custom, "IngestionAPIKey", namespace, "other", phase_is("Active"))
    key = _secret(core, namespace, "shipper")["token"]
    other = _secret(core, namespace, "other")["token"]
    assert _eventually(lambda: authenticator.get("/verify", {"X-API-Key": key}).status_code == 200)
    assert authenticator.get("/verify", {"X-API-Key": key}).status_code == 200
    assert authenticator.get("/verify?project=garden", {"X-API-Key": key}).status_code == 403
    assert authenticator.get("/verify", {"X-API-Key": "no-such-key"}).status_code == 401

    found = samples(authenticator.internal("/metrics").text)
    ok = series("tokenwarden_credential_verifications_total", namespace, "IngestionAPIKey", "shipper", result="ok")
    assert found[ok] >= 2
    assert found[series("tokenwarden_credential_verifications_total", namespace, "IngestionAPIKey", "shipper",
                        result="project")] == 1
    assert found[("tokenwarden_verifications_total", (("endpoint", "verify"), ("result", "unknown")))] >= 1
    now = time.time()
    for kind in ("ServiceAccount", "RoleBinding", "ServiceToken", "IngestionAPIKey"):
        synced = found[("tokenwarden_authenticator_last_sync_timestamp_seconds", (("kind", kind),))]
        assert now - 60 < synced <= now + 1, (kind, synced, now)
    text = authenticator.internal("/metrics").text
    assert key not in text and other not in text

    # The use reaches status.lastUsedAt, and the operator's gauge shows it.
    used = wait_for(custom, "IngestionAPIKey", namespace, "shipper", lambda o: o["status"].get("lastUsedAt"))
    last_used = series("tokenwarden_credential_last_used_timestamp_seconds", namespace, "IngestionAPIKey", "shipper")
    assert _eventually(lambda: samples(operator.metrics()).get(last_used) is not None)
    assert samples(operator.metrics())[last_used] >= _epoch(used["status"]["lastUsedAt"])

    # A second authenticator tracks one credential: the other's verifications are counted untracked.
    bounded = AuthenticatorProcess(cluster, tmp_path, port=_free_port(), extra=("--credential-metrics-limit", "1"))
    try:
        for _ in range(2):
            assert bounded.get("/verify", {"X-API-Key": key}).status_code == 200
        assert bounded.get("/verify", {"X-API-Key": other}).status_code == 200
        found = samples(bounded.internal("/metrics").text)
        assert found[ok] == 2
        assert series("tokenwarden_credential_verifications_total", namespace, "IngestionAPIKey", "other",
                      result="ok") not in found
        assert found[("tokenwarden_credential_verifications_untracked_total", ())] == 1
        # Deleted: its series go, and the place is free for another credential.
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "ingestionapikeys", "shipper")
        assert _eventually(lambda: 'name="shipper"' not in bounded.internal("/metrics").text)
        assert _eventually(lambda: 'name="shipper"' not in authenticator.internal("/metrics").text)
        assert bounded.get("/verify", {"X-API-Key": other}).status_code == 200
        assert samples(bounded.internal("/metrics").text)[series(
            "tokenwarden_credential_verifications_total", namespace, "IngestionAPIKey", "other", result="ok")] == 1
    finally:
        bounded.stop()


def _free_port() -> int:
    from tokenwarden import devcluster

    return devcluster.free_port()


def test_the_dashboard_and_the_alerts_name_only_exported_metrics(operator, authenticator):
    """Every metric a dashboard panel or an alert queries is one the two processes export."""
    import json
    import re

    chart = Path(__file__).resolve().parents[2] / "charts" / "tokenwarden"
    board = json.loads((chart / "dashboards" / "tokenwarden.json").read_text())
    queries = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    queries += [variable["definition"] for variable in board["templating"]["list"] if "definition" in variable]
    queries.append((chart / "templates" / "prometheusrule.yaml").read_text())
    wanted = {name for query in queries for name in re.findall(r"\btokenwarden_[a-z_]+", query)}
    exported = set()
    for text in (operator.metrics(), authenticator.internal("/metrics").text):
        for family in text_string_to_metric_families(text):
            exported.add(family.name)
            exported.update(sample.name for sample in family.samples)
            if family.type == "counter":
                exported.add(family.name + "_total")
    assert len(wanted) >= 10
    assert wanted <= exported, sorted(wanted - exported)


def test_build_info_in_both_processes_and_admission_reviews_by_result(operator, authenticator, custom, namespace):
    import tokenwarden

    for component, text in (("operator", operator.metrics()),
                            ("authenticator", authenticator.internal("/metrics").text)):
        builds = [dict(labels) for (name, labels), value in samples(text).items() if name == "tokenwarden_build_info"]
        assert len(builds) == 1 and builds[0]["component"] == component, builds
        assert builds[0]["version"] == tokenwarden.__version__ and builds[0]["kopf"] and builds[0]["python"]

    def count(name: str, **labels) -> float:
        return samples(operator.metrics()).get((name, tuple(sorted(labels.items()))), 0.0)

    review = {"kind": "ServiceToken", "operation": "CREATE"}
    before = {result: count("tokenwarden_admission_requests_total", **review, result=result)
              for result in ("allowed", "denied")}
    denials = count("tokenwarden_admission_denials_total", **review, reason="UnknownRole")
    create(custom, "ServiceToken", namespace, "admitted", {"roles": ["reader"]})
    try:
        create(custom, "ServiceToken", namespace, "refused", {"roles": ["no-such-role"]})
    except client.ApiException as exc:
        assert "no-such-role" in exc.body
    else:
        raise AssertionError("the webhook let a role in no catalog through")
    for result in ("allowed", "denied"):
        assert count("tokenwarden_admission_requests_total", **review, result=result) == before[result] + 1
        assert count("tokenwarden_admission_duration_seconds_count", **review, result=result) >= 1
    assert count("tokenwarden_admission_denials_total", **review, reason="UnknownRole") == denials + 1
