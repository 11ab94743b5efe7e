"""CLI commands: serve (the public side) and suppressions sync.

Starlette, uvicorn, SQLAlchemy and the SendGrid client are imported inside the commands.
"""

from __future__ import annotations

import socket

import click

from newsletter.cli.common import App, console, err_console, pass_app
from newsletter.core.errors import NewsletterError


def _check_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise NewsletterError(f"cannot listen on {host}:{port} ({exc.strerror}); "
                                  f"try --port {port + 1}") from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (keep 127.0.0.1 behind a reverse proxy).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on.")
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True,
              metavar="IPS", help="Proxies whose X-Forwarded-For/-Proto headers are trusted "
                                  "(comma-separated, or '*').")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@pass_app
def serve(app: App, host: str, port: int, forwarded_allow_ips: str, log_level: str) -> None:
    """Serve unsubscribe links, sign-up with double opt-in and the SendGrid event webhook."""
    from newsletter.web.public import serve as run

    pub = app.publication
    _check_free(host, port)
    if not pub.settings.webhook_public_key:
        err_console.print("[yellow]SENDGRID_WEBHOOK_PUBLIC_KEY is not set: POST "
                          "/webhooks/sendgrid answers 503 until it is.[/yellow]")
    run(pub, host, port, forwarded_allow_ips=forwarded_allow_ips, log_level=log_level,
        ready=lambda: console.print(f"Serving {pub.config.name} on http://{host}:{port}/ for "
                                    f"{pub.config.public_url}  (Ctrl-C to stop)"))


@click.group()
def suppressions() -> None:
    """SendGrid suppression lists (bounces, spam reports, unsubscribes, invalid emails)."""


@suppressions.command("sync")
@click.option("--full", is_flag=True, help="Fetch whole lists, not only entries since the last "
                                           "sync.")
@pass_app
def sync(app: App, full: bool) -> None:
    """Pull SendGrid's suppression lists and retire the addresses they name."""
    from newsletter.db import open_database
    from newsletter.events.suppressions import sync_suppressions

    pub = app.publication
    engine = open_database(pub.settings)
    try:
        report = sync_suppressions(pub, engine, full=full)
    finally:
        engine.dispose()
    console.print(report.summary())


COMMANDS: list[click.Command] = [serve, suppressions]
