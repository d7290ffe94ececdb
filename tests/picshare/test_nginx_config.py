"""The nginx configuration's options: what it refuses, and what it takes from
PicShare's settings (rendered configs are run by a real nginx in
tests/test_nginx_front.py)."""

from __future__ import annotations

import pytest

from picshare.nginx_config import NginxConfigError, NginxOptions, render_nginx_config

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = pytest.mark.one_pass

UPSTREAMS = ("127.0.0.1:8001", "127.0.0.1:8002")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (NginxOptions(upstreams=("127.0.0.1",)), "--upstream"),
        (NginxOptions(upstreams=("a:1; evil",)), "--upstream"),
        (NginxOptions(upstreams=UPSTREAMS, method="random"), "--method"),
        (NginxOptions(upstreams=UPSTREAMS, tls_cert="/c.pem"), "--tls-key"),
        (NginxOptions(upstreams=UPSTREAMS, edge_cache="/tmp/a b"), "--edge-cache"),
        (NginxOptions(upstreams=UPSTREAMS, edge_cache="/x;}"), "--edge-cache"),
        (NginxOptions(upstreams=UPSTREAMS, listen=70000), "--listen"),
    ],
)
def test_a_wrong_option_is_refused_by_name(options: NginxOptions, named: str) -> None:
    with pytest.raises(NginxConfigError, match=named):
        render_nginx_config(options)


def test_each_method_and_the_upload_limit_come_through() -> None:
    plain = render_nginx_config(NginxOptions(upstreams=UPSTREAMS, max_body_bytes=1000))
    assert "least_conn;" not in plain and "ip_hash;" not in plain
    assert "listen 80;" in plain and "ssl" not in plain and "proxy_cache " not in plain
    assert f"client_max_body_size {1000 + 64 * 1024};" in plain
    assert "proxy_request_buffering off;" in plain
    for method in ("least_conn", "ip_hash"):
        assert f"{method};" in render_nginx_config(NginxOptions(upstreams=UPSTREAMS, method=method))


def test_tls_listens_on_443_and_redirects_plain_http() -> None:
    text = render_nginx_config(
        NginxOptions(upstreams=UPSTREAMS, tls_cert="/c.pem", tls_key="/k.pem", edge_cache="/c")
    )
    assert "listen 443 ssl http2;" in text
    assert "return 301 https://$host$request_uri;" in text  # no :443 in the URL
    assert text.count("Strict-Transport-Security") == 2  # the media location repeats it
