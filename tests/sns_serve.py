"""The public app of a publication served by uvicorn, verifying SNS posts against a local
stand-in for the SNS hosts: `python -m tests.sns_serve ROOT PORT CA_FILE SNS_PORT`.

What `newsletter serve` runs, except that the app's SNS verifier fetches certificates from
127.0.0.1:SNS_PORT and trusts CA_FILE (the test's CA) for it: a test-only override that no
setting of the real command offers. Prints READY once it listens.
"""

from __future__ import annotations

import ssl
import sys
from pathlib import Path


def main() -> None:
    import uvicorn

    from newsletter.compose.publication import Publication
    from newsletter.providers.ses.sns import SnsVerifier, https_fetcher
    from newsletter.web.public import create_app

    root, port, ca_file, sns_port = sys.argv[1:5]
    pub = Publication.load(Path(root))
    app = create_app(pub, prune=False)
    context = ssl.create_default_context(cafile=ca_file)
    app.state.sns = SnsVerifier(pub.config.ses.topic_arns,
                                https_fetcher(f"127.0.0.1:{sns_port}", context=context))
    config = uvicorn.Config(app, host="127.0.0.1", port=int(port), log_level="warning",
                            access_log=False)
    server = uvicorn.Server(config)
    original = server.startup

    async def startup(sockets=None) -> None:
        await original(sockets)
        print("READY", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    server.run()


if __name__ == "__main__":
    main()
