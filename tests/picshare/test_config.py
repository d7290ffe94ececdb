"""Settings: TOML, then environment, validated; a wrong value names the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from picshare.config import GraphQLSettings, SettingsError, load_settings


def test_defaults_load() -> None:
    s = load_settings(env={})
    assert s.server.port == 8080
    assert s.uploads.max_bytes == 50 * 1024 * 1024
    # config/default.toml and the dataclass agree.
    assert s.graphql == GraphQLSettings()


def test_environment_overrides_toml(tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text("[server]\nport = 9000\n")
    s = load_settings(
        env={
            "PICSHARE_CONFIG": str(extra),
            "PICSHARE_UPLOADS_MAX_BYTES": "1000",
            "PICSHARE_DATABASE_URL": "postgresql://x@h/db",
            "PICSHARE_JOBS_ENABLED": "false",
            "PICSHARE_SERVER_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8",
            "PICSHARE_GRAPHQL_MAX_DEPTH": "6",
            "PICSHARE_GRAPHQL_MAX_COST": "900",
            "PICSHARE_REQUIRE_SERVICES": "1",  # not a setting: ignored
        }
    )
    assert s.server.port == 9000
    assert s.uploads.max_bytes == 1000
    assert s.database.url == "postgresql://x@h/db"
    assert s.jobs.enabled is False
    assert s.server.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    assert (s.graphql.max_depth, s.graphql.max_cost) == (6, 900)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PICSHARE_SERVER_PORT": "eighty"}, "server.port"),
        ({"PICSHARE_SERVER_PORT": "70000"}, "server.port"),
        ({"PICSHARE_JOBS_ENABLED": "maybe"}, "jobs.enabled"),
        ({"PICSHARE_DATABASE_URL": "mysql://x"}, "database.url"),
        ({"PICSHARE_SERVER_TRUSTED_PROXIES": "not-an-ip"}, "server.trusted_proxies"),
        ({"PICSHARE_DATABASE_SHARD_ID": "9000"}, "database.shard_id"),
        ({"PICSHARE_SERVER_WORKERS": "0"}, "server.workers"),
        ({"PICSHARE_GRAPHQL_MAX_DEPTH": "1"}, "graphql.max_depth"),
        ({"PICSHARE_GRAPHQL_MAX_COST": "0"}, "graphql.max_cost"),
        ({"PICSHARE_GRAPHQL_COST_PER_HIT": "0"}, "graphql.cost_per_hit"),
        ({"PICSHARE_GRAPHQL_DOCUMENT_CACHE": "0"}, "graphql.document_cache"),
        ({"PICSHARE_GRAPHQL_MAX_COST": "lots"}, "graphql.max_cost"),
        ({"PICSHARE_SERVER_WORKERS": "2"}, "PICSHARE_REDIS_URL"),
        (
            {
                "PICSHARE_SERVER_WORKERS": "2",
                "PICSHARE_REDIS_URL": "redis://127.0.0.1:6379/0",
                "PICSHARE_DATABASE_EMBEDDED_SHARDS": "2",
            },
            "embedded clusters",
        ),
        # USERS' own URL is database.url by another name (every other group
        # can leave it); photos apart only without shards.
        (
            {
                "PICSHARE_DATABASE_GROUP_USERS_URL": "postgresql://x@h/users",
                "PICSHARE_DATABASE_URL": "postgresql://x@h/rest",
            },
            "name different databases",
        ),
        (
            {"PICSHARE_DATABASE_GROUP_JOBS_URL": "postgresql://x@h/jobs"},
            "table group JOBS cannot have a database of its own",
        ),
        (
            {
                "PICSHARE_DATABASE_GROUP_USERS_URL": "postgresql://x@h/users",
                "PICSHARE_DATABASE_SHARDS": "postgresql://x@h/a,postgresql://x@h/b",
            },
            "users live on their shards",
        ),
        (
            {
                "PICSHARE_DATABASE_GROUP_PHOTOS_URL": "postgresql://x@h/photos",
                "PICSHARE_DATABASE_SHARDS": "postgresql://x@h/a,postgresql://x@h/b",
            },
            "table group PHOTOS cannot have a database of its own on a sharded site",
        ),
        ({"PICSHARE_SERVER_CERTFILE": "/nonexistent.pem"}, "server.keyfile"),
        (
            {"PICSHARE_SERVER_CERTFILE": "/no/c.pem", "PICSHARE_SERVER_KEYFILE": "/no/k.pem"},
            "server.certfile",
        ),
        ({"PICSHARE_SERVER_SERVICE": "billing"}, "server.service"),
        ({"PICSHARE_SERVER_SERVICE": "photos"}, "PICSHARE_REDIS_URL"),
        ({"PICSHARE_SERVER_SERVICE": "gateway"}, "--upstream NAME=URL for auth, photos"),
        ({"PICSHARE_GATEWAY_UPSTREAMS": "billing=http://x"}, "gateway.upstreams"),
        ({"PICSHARE_GATEWAY_UPSTREAMS": "auth=ftp://x"}, "gateway.upstreams"),
        ({"PICSHARE_GATEWAY_TIMEOUTS": "web=-1"}, "gateway.timeouts"),
        (
            {
                "PICSHARE_SERVER_SERVICE": "gateway",
                "PICSHARE_GATEWAY_UPSTREAMS": ",".join(
                    f"{n}=http://127.0.0.1:1"
                    for n in ("auth", "photos", "notifications", "search", "web")
                ),
            },
            "server.internal_secret",
        ),
    ],
)
def test_wrong_values_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        load_settings(env=env)


def test_the_users_own_url_is_where_the_users_live() -> None:
    users = "postgresql://x@h/users"
    for env in (
        {"PICSHARE_DATABASE_GROUP_USERS_URL": users},
        {"PICSHARE_DATABASE_GROUP_USERS_URL": users, "PICSHARE_DATABASE_URL": users},
    ):
        db = load_settings(env=env).database
        assert db.url == users
        assert "users" not in db.group_urls()


def test_unknown_setting_in_toml_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nprot = 1\n")
    with pytest.raises(SettingsError, match=r"server\.prot"):
        load_settings(files=[bad], env={})


def test_secret_key_is_made_once_and_must_be_long(tmp_path: Path) -> None:
    from picshare.secret import load_secret_key

    settings = load_settings(env={}, overrides={"server": {"data_dir": str(tmp_path)}})
    first = load_secret_key(settings)
    assert len(first) >= 32
    assert load_secret_key(settings) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    short = settings.replace(server={"secret_key": "short"})
    with pytest.raises(SettingsError, match="secret_key"):
        load_secret_key(short)
