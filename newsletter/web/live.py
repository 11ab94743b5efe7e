"""A live build of one issue: rebuild on change, keep the last good build, record the errors.

`LiveBuild.rebuild_now()` is synchronous (call it off the event loop); `watch()` is the async loop
that waits for file changes with watchfiles and rebuilds in a worker thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.compose import Build, build_issue
from newsletter.compose.publication import CONFIG_FILE, Publication
from newsletter.compose.render import PACKAGED_TEMPLATES, template_dir
from newsletter.core.errors import InputError
from newsletter.web.adapters import Finding, check_findings, problem_finding

IGNORED_SUFFIXES = (".swp", ".swx", "~", ".tmp")


@dataclass(frozen=True)
class Snapshot:
    """A successful build and what the checks said about it."""

    pub: Publication
    build: Build
    findings: list[Finding]
    number: int  # the state version this build was made at
    built_at: dt.datetime
    spam: str = "off"  # SpamAssassin: "off" (not available), "running" or "done"


@dataclass
class LiveBuild:
    """The current state of one issue's preview."""

    root: Path
    issue_dir: Path
    good: Snapshot | None = None
    problems: list[Finding] = field(default_factory=list)  # of the last attempt; empty if ok
    version: int = 0  # bumps on every rebuild attempt
    last_attempt: dt.datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    spam_checks: bool = True  # run the slow full checks (SpamAssassin) after each good build
    subjects: tuple[str, ...] = ()  # a subject test's subjects (`preview --test-subjects`)
    _spam_wanted: Snapshot | None = field(default=None, repr=False)
    _spam_signal: threading.Event = field(default_factory=threading.Event, repr=False)
    _spam_thread: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.issue_dir = self.issue_dir.resolve()

    def rebuild_now(self) -> bool:
        """Load the publication and build the issue; return True on success."""
        with self._lock:
            problems: list[Finding] = []
            snapshot = None
            try:
                pub = Publication.load(self.root)
                build = build_issue(pub, self.issue_dir)
                findings = check_findings(pub, build, subjects=self.subjects)
                snapshot = (pub, build, findings)
            except InputError as exc:
                problems = [problem_finding(self.root, p) for p in exc.problems]
            except Exception as exc:  # a bug or an unexpected state: show it, keep serving
                problems = [Finding("error", f"{type(exc).__name__}: {exc}", "build")]
            self.version += 1
            self.last_attempt = dt.datetime.now()
            if snapshot is not None:
                pub, build, findings = snapshot
                spam = "running" if self.spam_checks else "off"
                self.good = Snapshot(pub, build, findings, self.version, self.last_attempt, spam)
                if spam == "running":
                    self._want_spam(self.good)
            self.problems = problems
        return snapshot is not None

    def _want_spam(self, snapshot: Snapshot) -> None:
        """Queue the full checks (with SpamAssassin, ~2 s) for `snapshot` on a worker thread."""
        self._spam_wanted = snapshot
        self._spam_signal.set()
        if self._spam_thread is None:
            self._spam_thread = threading.Thread(
                target=self._spam_worker, name="preview-spam", daemon=True
            )
            self._spam_thread.start()

    def _spam_worker(self) -> None:
        while True:
            self._spam_signal.wait()
            self._spam_signal.clear()
            snapshot, self._spam_wanted = self._spam_wanted, None
            if snapshot is None:
                continue
            try:
                findings = check_findings(snapshot.pub, snapshot.build, spam=True,
                                          subjects=self.subjects)
            except Exception as exc:  # keep the fast findings, say what went wrong
                findings = snapshot.findings + [
                    Finding("warning", f"the full checks failed: {type(exc).__name__}: {exc}")
                ]
            with self._lock:
                if self.good is snapshot:  # otherwise a newer build superseded it
                    self.good = dataclasses.replace(snapshot, findings=findings, spam="done")
                    self.version += 1

    @property
    def ok(self) -> bool:
        return not self.problems and self.good is not None

    def template_folder(self) -> Path:
        """The template folder in use (the packaged default when settings do not load)."""
        try:
            return template_dir(self.good.pub if self.good else Publication.load(self.root))
        except InputError:
            return PACKAGED_TEMPLATES / "default"

    def watch_paths(self) -> tuple[Path, ...]:
        """What to watch: the issue folder, the template folder and the publication root."""
        return (self.issue_dir, self.template_folder(), self.root)

    def relevant(self, path: str, paths: tuple[Path, ...]) -> bool:
        """Whether a changed path can affect the build (given the watched `paths`)."""
        changed = Path(path)
        if changed.name.endswith(IGNORED_SUFFIXES) or changed.name.startswith(".#"):
            return False
        if changed.parent == self.root:  # a new templates/ folder may change the template used
            return changed.name in (CONFIG_FILE, "templates")
        return any(changed.is_relative_to(p) for p in paths[:2])

    async def watch(self, stop: object) -> None:
        """Rebuild whenever a relevant file changes, until `stop` (an anyio Event) is set."""
        import anyio
        from watchfiles import Change, awatch

        while not stop.is_set():
            paths = self.watch_paths()
            folders = [p for p in paths[:2] if p.exists()]

            def keep(change: Change, path: str, paths: tuple[Path, ...] = paths) -> bool:
                return self.relevant(path, paths)

            async def pump(out: object, targets: list[Path], recursive: bool) -> None:
                async with out:
                    async for _ in awatch(
                        *targets,
                        watch_filter=keep,
                        recursive=recursive,
                        stop_event=stop,
                        debounce=400,
                        step=50,
                    ):
                        await out.send(1)

            # The root is watched without recursion (dist/, .venv/, outbox/ are of no concern);
            # watchfiles has one `recursive` switch per watcher, so the root gets its own.
            send, receive = anyio.create_memory_object_stream[int](16)
            async with anyio.create_task_group() as group:
                async with send:
                    group.start_soon(pump, send.clone(), folders, True)
                    group.start_soon(pump, send.clone(), [self.root], False)
                async with receive:
                    async for _ in receive:
                        while True:  # coalesce the changes that queued up meanwhile
                            try:
                                receive.receive_nowait()
                            except (anyio.WouldBlock, anyio.EndOfStream):
                                break
                        await anyio.to_thread.run_sync(self.rebuild_now)
                        if self.watch_paths() != paths:
                            group.cancel_scope.cancel()  # the template folder moved: re-watch
                            break
