from __future__ import annotations

from datetime import timedelta

import pytest

from tokenwarden.config import ConfigError, Settings, load_settings
from tokenwarden.durations import parse_duration


def test_defaults_follow_the_seed_quotas():
    settings = Settings()
    assert settings.quotas.max_accounts_per_namespace == 50
    assert settings.quotas.max_tokens_per_account == 100
    assert settings.prefixes.service_token != settings.prefixes.ingestion_key
    assert settings.expired_retention == timedelta(hours=24)


def test_file_overrides(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("roles:\n  ops:\n    permissions: [read, write]\nexpiredRetention: 0s\n")
    settings = load_settings(path)
    assert list(settings.roles) == ["ops"]
    assert settings.expired_retention == timedelta(0)


@pytest.mark.parametrize("text, problem", [
    ("quotas: {maxTokensPerAccount: -1}", "quotas.maxTokensPerAccount"),
    ("roles: {ops: {permissions: []}}", "roles.ops.permissions"),
    ("prefixes: {serviceToken: same, ingestionKey: same}", "must differ"),
    ("expiredRetention: tomorrow", "invalid duration"),
    ("colour: blue", "colour"),
    ("a: [", "not valid YAML"),
])
def test_invalid_files_are_named(tmp_path, text, problem):
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_settings(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("15m", 900), ("24h", 86400), ("90d", 7776000),
                                           ("1h30m", 5400), ("2w", 1209600)])
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "24", "h", "1.5h", "-1h", "1y"])
def test_bad_durations_name_the_fix(text):
    with pytest.raises(ValueError, match="use a number and a unit"):
        parse_duration(text)
