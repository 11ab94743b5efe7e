"""CLI commands: serve (the public side), suppressions sync and events prune.

Starlette, uvicorn, SQLAlchemy and the SendGrid client are imported inside the commands.
"""

from __future__ import annotations

import click

from newsletter.cli.common import App, console, err_console, pass_app
from newsletter.core.errors import NewsletterError


def _check_free(host: str, port: int) -> None:
    import socket

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
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes sharing the port (they share state through the database).")
@click.option("--graceful-timeout", default=30, show_default=True, type=click.IntRange(1, 3600),
              metavar="SECONDS", help="On SIGTERM/SIGINT, how long requests in flight may take "
                                      "to finish.")
@pass_app
def serve(app: App, host: str, port: int, forwarded_allow_ips: str, log_level: str,
          workers: int, graceful_timeout: int) -> None:
    """Serve unsubscribe links, sign-up with double opt-in, the SendGrid event webhook and the
    published archive (see docs/deploy.md)."""
    from newsletter.web.public import serve as run

    pub = app.publication
    _check_free(host, port)
    if not pub.settings.webhook_public_key:
        err_console.print("[yellow]SENDGRID_WEBHOOK_PUBLIC_KEY is not set: POST "
                          "/webhooks/sendgrid answers 503 until it is.[/yellow]")
    run(pub, host, port, forwarded_allow_ips=forwarded_allow_ips, log_level=log_level,
        workers=workers, graceful_timeout=graceful_timeout,
        ready=lambda: console.print(f"Serving {pub.config.name} on http://{host}:{port}/ for "
                                    f"{pub.config.public_url}  (Ctrl-C to stop)"))


#: the providers with suppression lists (newsletter.providers.SUPPRESSION_LISTS, not imported:
#: help stays light)
SUPPRESSION_LISTS = ("sendgrid", "ses", "postmark", "mailgun")


@click.group()
def suppressions() -> None:
    """Provider suppression lists (SendGrid, SES, Postmark, Mailgun)."""


@suppressions.command("sync")
@click.option("--provider", type=click.Choice(SUPPRESSION_LISTS), default=None,
              help="Whose lists to read (default: NEWSLETTER_TRANSPORT when it is one of them, "
                   "else sendgrid).")
@click.option("--full", is_flag=True, help="Fetch whole lists, not only entries since the last "
                                           "sync.")
@pass_app
def sync(app: App, provider: str | None, full: bool) -> None:
    """Pull a provider's suppression lists and retire the addresses they name: SendGrid's
    bounces, spam reports, unsubscribes and invalid emails; SES's account-level suppression
    list (bounces and complaints); Postmark's suppressions of the message stream; Mailgun's
    bounces, complaints and unsubscribes."""
    from newsletter.db import open_database
    from newsletter.events.suppressions import sync_provider, sync_suppressions

    pub = app.publication
    chosen = provider or (pub.settings.transport if pub.settings.transport in
                          SUPPRESSION_LISTS else "sendgrid")
    engine = open_database(pub.settings)
    try:
        report = (sync_suppressions(pub, engine, full=full) if chosen == "sendgrid"
                  else sync_provider(pub, engine, chosen, full=full))
    finally:
        engine.dispose()
    console.print(report.summary())


@click.group()
def events() -> None:
    """SendGrid webhook events stored in the database."""


@events.command("prune")
@click.option("--keep-days", type=click.IntRange(min=1), default=None,
              help="Keep this many days (default: NEWSLETTER_EVENTS_KEEP_DAYS, else 400).")
@pass_app
def prune(app: App, keep_days: int | None) -> None:
    """Delete webhook events older than the keep period, in batches (engagement totals per
    send are kept), and sign-up requests left unconfirmed for NEWSLETTER_SIGNUPS_KEEP_DAYS
    (default 7); `serve` also does this hourly."""
    from newsletter.db import open_database
    from newsletter.events.prune import prune_events

    pub = app.publication
    engine = open_database(pub.settings)
    try:
        report = prune_events(engine, keep_days or pub.settings.events_keep_days,
                              signups_keep_days=pub.settings.signups_keep_days)
    finally:
        engine.dispose()
    console.print(report.summary(), markup=False)


COMMANDS: list[click.Command] = [serve, suppressions, events]
