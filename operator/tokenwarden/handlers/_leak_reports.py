"""The leak-report endpoint, off by default: a secret scanner (GitHub's partner programme, or
anything that speaks it) POSTs the values it found; a report signed with a configured key
revokes each value tokenwarden knows as the CLI's ``token revoke --leaked`` does (the leak
recorded on the credential, the successor minted with no overlap) and is recorded as an
event on the credential. Served by the operator, which may patch tokens; the authenticator,
exposed to everyone, may not."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import kopf
from aiohttp import web
from aiohttp.web import TCPSite

from tokenwarden import reasons
from tokenwarden.handlers._leaks import LEAK_REPORTS
from tokenwarden.kube import events, objects
from tokenwarden.kube._leaks import find_leaked, record_leak
from tokenwarden.policies._leak_reports import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    Report,
    ReportRefused,
    answer,
    check_signature,
    parse_reports,
)
from tokenwarden.tokens import hash_token, hmac_token

logger = logging.getLogger("tokenwarden.leaks")


@dataclass
class LeakReportOptions:
    port: int | None = None       # None: no endpoint
    bind: str = "0.0.0.0"
    path: str = "/secret-scanning"
    keys: dict = field(default_factory=dict)  # key identifier → ECDSA P-256 public key


class LeakReports:
    def __init__(self, options: LeakReportOptions, memo) -> None:
        self.options = options
        self.memo = memo

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            check_signature(self.options.keys, request.headers.get(KEY_ID_HEADER),
                            request.headers.get(SIGNATURE_HEADER), body)
            reports = parse_reports(body)
        except ReportRefused as exc:
            LEAK_REPORTS.labels(result="refused").inc()
            logger.warning("leak report from %s refused: %s", request.remote, exc)
            return web.json_response({"error": str(exc)}, status=exc.status)
        answers = await asyncio.to_thread(self.revoke, reports)
        return web.json_response(answers)

    def revoke(self, reports: list[Report]) -> list[dict]:
        """Revoke every reported value a credential holds (one listing for the whole report)."""
        key = self.memo.import_keys.key
        by_hash: dict[str, list[Report]] = {}
        for report in reports:
            by_hash.setdefault(hash_token(report.token), []).append(report)
            if key:
                by_hash.setdefault(hmac_token(report.token, key), []).append(report)
        revoked: set[int] = set()
        scopes = objects.listing_scopes(self.memo.namespaces)
        for leaked in find_leaked(self.memo.custom, list(by_hash), scopes):
            body = record_leak(self.memo.custom, leaked)
            for report in by_hash[leaked.token_hash]:
                revoked.add(id(report))
                if body is not None:
                    events.post_event(self.memo.core, events.object_reference(body), reasons.LEAK_REPORTED,
                                      f"reported leaked by a secret scanner ({report.describe()}): token "
                                      f"{leaked.token_id or '-'} is refused and replaced with no overlap")
                logger.warning("%s: token %s reported leaked (%s)", leaked.what, leaked.token_id, report.describe())
        for report in reports:
            LEAK_REPORTS.labels(result="revoked" if id(report) in revoked else "false_positive").inc()
        return [answer(report, id(report) in revoked) for report in reports]

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post(self.options.path, self.receive)
        return app


@kopf.on.startup()
async def serve_leak_reports(memo, logger, **_) -> None:
    options: LeakReportOptions | None = getattr(memo, "leak_report_options", None)
    if options is None or not options.port:
        return
    runner = web.AppRunner(LeakReports(options, memo).app(), access_log=None)
    await runner.setup()
    await TCPSite(runner, options.bind, options.port).start()
    memo.leak_report_runner = runner
    logger.info(f"leak reports accepted on http://{options.bind}:{options.port}{options.path} "
                f"(signed with one of {len(options.keys)} key(s))")


@kopf.on.cleanup()
async def stop_leak_reports(memo, **_) -> None:
    runner = getattr(memo, "leak_report_runner", None)
    if runner is not None:
        await runner.cleanup()
