"""`run.py nginx-config`: an nginx configuration for PicShare processes.

The template is deploy/nginx/picshare.conf.j2; this module owns its options,
their checks, and the values it takes from PicShare's settings (the upload
limit, the media prefix), so nginx and PicShare never disagree on them.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from picshare.config import Settings

TEMPLATES = Path(__file__).resolve().parent.parent / "deploy" / "nginx"
METHODS = ("round_robin", "least_conn", "ip_hash")
# Room for the multipart envelope around a file of exactly uploads.max_bytes:
# a caption of 2,200 characters (up to 4 bytes each), tags, boundaries, headers.
_ENVELOPE_BYTES = 64 * 1024
_UPSTREAM = re.compile(r"(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}|unix:/[^\s;{}]+")
_SAFE_PATH = re.compile(r"[^\s;{}'\"$]+")


class NginxConfigError(ValueError):
    """An option is wrong; the message names it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NginxOptions:
    upstreams: tuple[str, ...]
    method: str = "round_robin"
    listen: int | None = None
    tls_cert: str = ""
    tls_key: str = ""
    redirect_port: int = 80
    edge_cache: str = ""
    edge_cache_max: str = "10g"
    max_body_bytes: int = 52428800
    upload_timeout: float = 600.0
    media_prefix: str = "/media"


def add_nginx_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--upstream",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="a PicShare process (repeat for each)",
    )
    parser.add_argument("--method", choices=METHODS, default="round_robin")
    parser.add_argument("--listen", type=int, help="the port nginx serves on (80, or 443 with TLS)")
    parser.add_argument("--tls-cert", default="", help="terminate TLS: certificate chain (PEM)")
    parser.add_argument("--tls-key", default="", help="terminate TLS: private key (PEM)")
    parser.add_argument(
        "--redirect-port", type=int, default=80, help="with TLS: plain HTTP port that redirects"
    )
    parser.add_argument("--edge-cache", default="", help="cache /media/ at the edge in this folder")
    parser.add_argument("--edge-cache-max", default="10g", help="the edge cache's size bound")


def nginx_options(args: argparse.Namespace, settings: Settings) -> NginxOptions:
    """The command's options, with the values that must match PicShare's settings."""
    return NginxOptions(
        upstreams=tuple(args.upstream),
        method=args.method,
        listen=args.listen,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        redirect_port=args.redirect_port,
        edge_cache=args.edge_cache,
        edge_cache_max=args.edge_cache_max,
        max_body_bytes=settings.uploads.max_bytes,
        upload_timeout=settings.uploads.read_timeout,
        media_prefix=settings.media.url_prefix.rstrip("/"),
    )


def render_nginx_config(options: NginxOptions) -> str:
    _check(options)
    tls = bool(options.tls_cert)
    listen = options.listen or (443 if tls else 80)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        # nginx syntax, not HTML: HTML escaping would corrupt it; every value
        # is checked by _check (no quotes, ';', braces or '$').
        autoescape=False,  # noqa: S701
    )
    return env.get_template("picshare.conf.j2").render(
        upstreams=options.upstreams,
        method=options.method,
        listen=listen,
        tls=tls,
        tls_cert=str(Path(options.tls_cert).resolve()) if tls else "",
        tls_key=str(Path(options.tls_key).resolve()) if tls else "",
        redirect_port=options.redirect_port,
        https_port_suffix="" if listen == 443 else f":{listen}",
        edge_cache=str(Path(options.edge_cache).resolve()) if options.edge_cache else "",
        edge_cache_max=options.edge_cache_max,
        client_max_body_size=options.max_body_bytes + _ENVELOPE_BYTES,
        upload_timeout=int(options.upload_timeout),
        media_prefix=options.media_prefix,
    )


def _check(options: NginxOptions) -> None:
    for upstream in options.upstreams:
        if not _UPSTREAM.fullmatch(upstream):
            raise NginxConfigError(f"--upstream {upstream!r} is not HOST:PORT")
    if options.method not in METHODS:
        raise NginxConfigError(f"--method must be one of {', '.join(METHODS)}")
    if bool(options.tls_cert) != bool(options.tls_key):
        raise NginxConfigError("--tls-cert and --tls-key go together")
    for flag, value in (
        ("--tls-cert", options.tls_cert),
        ("--tls-key", options.tls_key),
        ("--edge-cache", options.edge_cache),
        ("--media-prefix", options.media_prefix),
    ):
        if value and not _SAFE_PATH.fullmatch(value):
            raise NginxConfigError(f"{flag} {value!r}: no spaces, quotes, ';', '{{' or '$'")
    if not re.fullmatch(r"[0-9]+[kKmMgG]?", options.edge_cache_max):
        raise NginxConfigError("--edge-cache-max is a size such as 10g or 500m")
    ports = [p for p in (options.listen, options.redirect_port) if p is not None]
    if not all(0 < p < 65536 for p in ports):
        raise NginxConfigError("--listen and --redirect-port must be between 1 and 65535")
