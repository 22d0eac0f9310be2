"""Whole tables: a table re-read whole (`merge` and `snapshot`), landed only when it changed.

A merge table (recordings) and a snapshot table (rooms, participants,
deployments) are replicated alike: the whole table is read and landed as one
batch unless its content digest equals the last one landed; they differ in
the label of their batch folders only. A table whose last read took more than one
page is probed first (one row, newest `change_sort` first). A type served per
record of a parent type (deployment sessions) is read parent by parent.

State it owns: `snapshots` (the digest landed last), `whole_probes` (what the
last probe saw) and its ledger rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from hs_sync import registry
from hs_sync.api.client import Envelope
from hs_sync.api.paths import endpoint, quote_id
from hs_sync.extract.pages import Pull, PullContext, PullResult, row_hash, total_of
from hs_sync.registry import DataType, Mode
from hs_sync.timeutil import parse_time

Pages = Iterable[tuple[Envelope, str]]


# The label of a whole-table batch's folder, by mode: what the transform reads it as.
LABELS = {Mode.MERGE: "merge", Mode.SNAPSHOT: "snap"}


class WholeTable(Pull):
    """Re-reads a whole table per experiment (`Mode.MERGE`, `Mode.SNAPSHOT`), its batches
    labelled by its mode."""

    def __init__(self, ctx: PullContext, dt: DataType):
        super().__init__(ctx, dt)
        self.label = LABELS.get(dt.mode, "snap")

    def pull(self, exp: str) -> PullResult:
        """Re-read the table, unless a probe shows it did not change.

        The probe is made when the last read took more than one page, until
        `poll_max_interval_seconds` since that read: the same total and first row
        as the last probe saw means no re-read.
        """
        probe, seen = self._probe(exp)
        if probe is not None and seen is None:
            return probe  # nothing changed
        result = self.land(exp, whole_pages(self.ctx, self.dt, exp))
        if probe is not None:
            result.merge(probe)
        if self._probed() and not result.errors:
            pages = result.requests - (probe.requests if probe else 0)
            self.state.set_whole_probe(self.dt.name, exp, pages, seen, self.ctx.window_end)
        return result

    def _probed(self) -> bool:
        return bool(self.dt.change_sort and self.dt.data_endpoint)

    def _probe(self, exp: str) -> tuple[PullResult | None, list | None]:
        """(the probe's result, what it saw), what it saw being None when it is what the
        last probe saw; (None, None) when no probe is made."""
        if not self._probed() or self.config.full_refresh:
            return None, None
        remembered = self.state.whole_probe(self.dt.name, exp)
        now = parse_time(self.ctx.window_end)
        if remembered is None or now is None:
            return None, None
        pages, last, read_at_text = remembered
        read_at = parse_time(read_at_text)
        fresh = read_at is not None and (now - read_at).total_seconds() < (
            self.config.poll_max_interval_seconds
        )
        if pages <= 1 or not fresh:
            return None, None
        result = PullResult(self.dt.name, exp)
        dt = self.dt
        page = self.client.get(
            dt.url_path("experiment", quote_id(exp)),
            {**dict(dt.extra_params), "limit": 1, "offset": 0, "sort": dt.change_sort,
             "order": "desc"},
            endpoint=endpoint(dt, "experiment"),
        )  # fmt: skip
        result.count("probe")
        first = page.records[0] if page.records else None
        seen = [total_of(page), row_hash(first)]
        if seen == last:
            result.windows.append(
                {"data_type": dt.name, "experiment_id": exp, "scope": "experiment",
                 "scope_id": exp, "rows": 0, "requests": 1, "unchanged": True, "probe": True}
            )  # fmt: skip
            return result, None
        return result, seen

    def land(self, exp: str, pages: Pages) -> PullResult:
        """Land a whole-table read, skipping it when identical to the last one landed."""
        dt = self.dt
        result = PullResult(dt.name, exp)
        writer = self.ctx.writer(
            dt, exp, self.label, "experiment", exp, track_cursor=False, digest=True, staged=True
        )
        requests = 0
        try:
            for page, fetched_at in pages:
                requests += 1
                writer.add(page, fetched_at)
            previous = (
                None if self.config.full_refresh else self.state.snapshot_digest(dt.name, exp)
            )
            unchanged = writer.content_digest == previous
            if unchanged:
                writer.discard()
            else:
                writer.publish()
        finally:
            writer.close()
        result.requests = requests
        result.rows = 0 if unchanged else writer.rows  # rows landed
        result.files = len(writer.files)
        result.warnings = list(writer.all_warnings)
        result.windows.append(
            {
                "data_type": dt.name,
                "experiment_id": exp,
                "scope": "experiment",
                "scope_id": exp,
                "fetched": writer.rows,
                "rows": result.rows,
                "requests": requests,
                "files": len(writer.files),
                "unchanged": unchanged,
            }
        )
        self.state.complete_window(
            self.ctx.run_id,
            dt.name,
            exp,
            scope="experiment",
            scope_id=exp,
            start=None,
            end=None,
            rows=writer.rows,
            total=None,
            requests=requests,
            batch=writer.folder.name if writer.files else None,
        )
        if not unchanged:
            self.state.set_snapshot_digest(dt.name, exp, writer.content_digest)

        self.ctx.progress("snapshot", data_type=dt.name, experiment=exp, rows=writer.rows)
        return result


class Children(WholeTable):
    """Re-reads a type served per record of its `parent` type (the experiment's
    deployments' sessions): the parent list, then each parent's records."""

    def pull(self, exp: str) -> PullResult:
        parent = registry.BY_NAME[self.dt.parent or ""]
        ids = [
            str(record["id"])
            for page, _ in whole_pages(self.ctx, parent, exp)
            for record in page.records
            if isinstance(record, dict) and record.get("id") is not None
        ]

        def children() -> Iterator[tuple[Envelope, str]]:
            for parent_id in ids:
                path = self.dt.url_path("", "", parent_id=quote_id(parent_id))
                params = dict(self.dt.extra_params)
                yield from self.ctx.pages(path, params, endpoint=self.dt.path, paged=self.dt.paged)

        result = self.land(exp, children())
        result.requests += 1  # the parent list
        return result


def whole_pages(ctx: PullContext, dt: DataType, exp: str) -> Iterator[tuple[Envelope, str]]:
    """The pages of one experiment's whole table of `dt`."""
    if dt.data_endpoint:
        path, params = dt.url_path("experiment", quote_id(exp)), dict(dt.extra_params)
        keep = ctx.keep if dt.triggers_media else None
        return ctx.pages(
            path, params, endpoint=endpoint(dt, "experiment"), paged=dt.paged, keep=keep
        )
    params = {"experimentId": exp, **dict(dt.extra_params)}
    return ctx.pages(dt.path, params, endpoint=dt.path, paged=False)
