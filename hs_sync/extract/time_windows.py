"""Time windows: a time type, read by `startTime` from a watermark and verified by totals.

Experiment scope, `startTime = watermark - lookback`, `endTime` fixed (server
time at the start of the run) for the whole pagination; the rows fetched are
reconciled with `pagination.total`, a mismatch re-reads the window; the ledger
records the window and the watermark moves to its end. History is verified by
comparing the API's totals with the landed rows per time bucket
(docs/requests.md).

State it owns: `watermarks`, `buckets`, `tail_keys` and its ledger rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hs_sync.api.client import Envelope
from hs_sync.api.paths import endpoint, quote_id
from hs_sync.extract.pages import (
    MAX_REREADS,
    Pull,
    PullResult,
    add_warnings,
    now_iso,
    reconciled,
    total_of,
)
from hs_sync.extract.polling import SLACK
from hs_sync.land.batch import BatchWriter
from hs_sync.timeutil import parse_time, to_iso


class TimeWindows(Pull):
    """Pulls a time type's new rows per experiment (`Mode.TIME`)."""

    def pull(self, exp: str) -> PullResult:
        """Land what is new in a time type, verifying history by totals (docs/requests.md).

        First sync (or --full-refresh): one ascending read of everything up to the
        run's server time. After that: one `head` request, newest rows first over
        the verified range (the last `verify_recent_hours`, or all history when it
        is due), whose `pagination.total` is compared with the rows landed for
        that range. Equal: nothing to read. Otherwise the open region (from the
        watermark's bucket, less the lookback) is landed, from the head page
        itself when it holds all of it, and a remainder that still disagrees is
        bisected down to the sub-windows that differ, which are re-read.
        """
        result = PullResult(self.dt.name, exp)
        mark = None if self.config.full_refresh else self.state.watermark(self.dt.name, exp)
        mark_at = parse_time(mark)
        end_at = parse_time(self.ctx.window_end)
        if mark_at is None or end_at is None or not self.dt.cursor:
            self._read_open(exp, None, result, purpose="data")
            if not result.errors:
                result.verified = True
                self.state.forget_unconverged(self.dt.name, exp)  # all history re-read
            return result
        lookback = timedelta(seconds=self.config.lookback_seconds)
        open_from = self.bucket(min(mark_at - lookback, end_at))
        poll = self.state.poll(self.dt.name, exp) or {}
        verified_at = parse_time(poll.get("verified_at"))
        # due a little early, as polls are (a unit polled daily verifies all on each poll)
        full = verified_at is None or end_at - verified_at >= timedelta(
            hours=self.config.verify_all_hours * (1 - SLACK)
        )
        reach = timedelta(hours=self.config.verify_recent_hours)
        recent = self.bucket(end_at - reach)
        # back at least to where the previous poll's range began: a row that arrived
        # late since then is inside this poll's range
        polled_at = parse_time(poll.get("polled_at"))
        if polled_at is not None:
            recent = min(recent, self.bucket(polled_at - reach))
        vstart = None if full else min(open_from, recent)
        if not self.ctx.promises.total:
            # no count to verify by: the open region every poll, and when a full
            # verification is due, the last verify_recent_hours re-read instead
            if self._read_open(exp, min(open_from, recent) if full else open_from, result,
                               purpose="data") is not None:  # fmt: skip
                result.verified = full
            return result
        lively = poll.get("unchanged", 0) == 0 and poll.get("polled_at") is not None
        newest_first = self.ctx.promises.order
        limit = self.config.page_size if lively and newest_first else 1
        # without order=desc the head is one ascending row: its total is what is read
        head = self._get(
            exp, vstart, None, result, "probe", limit=limit, order="desc" if newest_first else "asc"
        )
        total = total_of(head)
        known = self._known(exp, vstart, None)
        if total is not None and total == known:
            self.state.complete_window(
                self.ctx.run_id, self.dt.name, exp, scope="experiment", scope_id=exp,
                start=_iso_s(vstart), end=self.ctx.window_end, rows=0, total=total, requests=1,
                batch=None, watermark=self.ctx.window_end, keep_tail=True,
            )  # fmt: skip
            result.verified = full
            result.windows.append(self._window_entry(exp, vstart, None, 0, 0, total, 1, 0))
            return result
        opened = self._open_from_head(exp, head, open_from, result) if newest_first else None
        exact = opened is not None  # the remainder comes from the same response
        if opened is None:
            opened = self._read_open(exp, open_from, result, purpose="data")
        if opened is None or total is None:
            return result  # an inconsistent read: reported; the watermark stayed
        remainder = total - opened
        if remainder != self._known(exp, vstart, open_from):
            # rows arriving between the head and the read make a separate read's
            # remainder inexact: the closed region is then probed by itself
            done = self._reconcile(exp, vstart, open_from, remainder if exact else None, result)
        else:
            done = True
        if done:
            result.verified = full
        else:
            result.warnings.append(
                "history differs from the rows landed beyond this run's verification budget; "
                "the next sync goes on"
            )
        return result

    def bucket(self, moment: datetime) -> int:
        """The start (epoch seconds) of the time bucket holding `moment`."""
        width = self.config.bucket_seconds
        return int(moment.timestamp()) // width * width

    def _known(self, exp: str, lo: int | None, hi: int | None) -> int:
        """The rows landed in [lo, hi), counting a window marked as not converging inside
        it at the API's count: it is not bisected into again while that count holds."""
        landed = sum(n for _, n in self.state.bucket_rows(self.dt.name, exp, lo, hi))
        for start, end, api, rows in self.state.unconverged(self.dt.name, exp):
            if (lo is None or start >= lo) and (hi is None or end <= hi):
                landed += api - rows
        return landed

    def _settle(self, exp: str, lo: int | None, hi: int, total: int, result: PullResult) -> bool:
        """After a re-read of [lo, hi): True when its landed rows now agree with the API's
        `total`, or when two re-reads left the same disagreement (the window is then
        marked, reported by `hs-sync check`, and not re-read while the counts hold)."""
        start = 0 if lo is None else lo
        landed = sum(n for _, n in self.state.bucket_rows(self.dt.name, exp, lo, hi))
        if landed == total:
            self.state.forget_unconverged(self.dt.name, exp, start, hi)
            return True
        attempts = self.state.note_unconverged(
            self.dt.name, exp, start, hi, total, landed, self.ctx.window_end
        )
        if attempts < 2:
            return False
        result.warnings.append(
            f"{_iso_s(start)}..{_iso_ms(hi * 1000 - 1)}: the API counts {total} rows, "
            f"{landed} landed after two re-reads; not re-read again (see `hs-sync check`)"
        )
        return True

    def _get(
        self,
        exp: str,
        lo: int | None,
        hi: int | None,
        result: PullResult,
        purpose: str,
        *,
        limit: int = 1,
        order: str = "asc",
    ) -> Envelope:
        """One request for [lo, hi) (bucket bounds, None: open) of a time type."""
        params = {**self._time_params(lo, hi), "limit": limit, "offset": 0, "order": order}
        page = self.client.get(
            self.dt.url_path("experiment", quote_id(exp)),
            params,
            endpoint=endpoint(self.dt, "experiment"),
        )
        result.count(purpose)
        return page

    def _time_params(self, lo: int | None, hi: int | None) -> dict[str, Any]:
        end = self.ctx.window_end if hi is None else _iso_ms(hi * 1000 - 1)
        if not self.ctx.promises.bounds:
            # an API whose endTime is exclusive is asked one millisecond past the end
            moment = parse_time(end)
            if moment is not None:
                end = to_iso(moment + timedelta(milliseconds=1))
        params: dict[str, Any] = {"startTime": _iso_s(lo), "endTime": end}
        params.update(dict(self.dt.extra_params))
        params["sort"] = self.dt.sort or self.dt.cursor
        params["order"] = "asc"
        return params

    def _open_from_head(
        self, exp: str, head: Envelope, open_from: int, result: PullResult
    ) -> int | None:
        """Land the open region from the head page (newest first) when the page reaches
        below it; the rows of the open region, or None when the page did not cover it."""
        records = head.records
        if len(records) < 2 and (head.pagination or {}).get("hasMore"):
            return None
        cursors = [r.get(self.dt.cursor) if isinstance(r, dict) else None for r in records]
        counts = _bucket_counts(cursors, self.config.bucket_seconds)
        covered = not (head.pagination or {}).get("hasMore") or any(b < open_from for b in counts)
        if not covered or None in counts:
            return None
        width = self.config.bucket_seconds
        keep = [
            r for r, c in zip(records, cursors, strict=True) if _bucket_of(c, width) >= open_from
        ]
        keep.reverse()  # landed oldest first, as an ascending read would
        page = Envelope(head.path, head.params, keep, head.metadata, head.server_time)
        opened = {b: n for b, n in counts.items() if b >= open_from}
        self._land_read(exp, open_from, None, [(page, now_iso())], result, opened, None)
        return len(keep)

    def _read_open(
        self, exp: str, lo: int | None, result: PullResult, *, purpose: str
    ) -> int | None:
        """Read [lo, run end] ascending and land it; its rows, or None if never consistent."""
        for _attempt in range(MAX_REREADS + 1):
            got = self._read(exp, lo, None, result, purpose)
            if got is not None:
                return got
            result.warnings.append("the rows fetched disagree with pagination.total; re-reading")
        result.errors.append(
            f"row count still disagrees with pagination.total after {MAX_REREADS + 1} passes; "
            "the watermark was not moved to the window end"
        )
        return None

    def _read(
        self, exp: str, lo: int | None, hi: int | None, result: PullResult,
        purpose: str,
    ) -> int | None:  # fmt: skip
        """One ascending read of [lo, hi) landed as one batch; its rows if consistent."""
        pages = self.ctx.pages(
            self.dt.url_path("experiment", quote_id(exp)),
            self._time_params(lo, hi),
            endpoint=endpoint(self.dt, "experiment"),
        )
        return self._land_read(exp, lo, hi, pages, result, None, purpose)

    def _land_read(
        self,
        exp: str,
        lo: int | None,
        hi: int | None,
        pages,
        result: PullResult,
        counts: dict[int, int] | None,
        purpose: str | None,
    ) -> int | None:
        """Land pages of [lo, hi); record the window, its bucket counts and (open
        windows) the watermark in one transaction once its files are durable."""
        opening = hi is None
        end_at = parse_time(self.ctx.window_end)
        lookback = timedelta(seconds=self.config.lookback_seconds)
        known = self.state.tail_keys(self.dt.name, exp) if opening and lo is not None else set()
        start, end = _iso_s(lo), (self.ctx.window_end if opening else _iso_ms(hi * 1000 - 1))
        writer = self.ctx.writer(
            self.dt, exp, "w" if opening else "v", "experiment", exp,
            window={"startTime": start, "endTime": end},
            skip_keys=known,
            tail_from=(
                datetime.fromtimestamp(self.bucket(end_at - lookback), timezone.utc)
                if opening and end_at is not None
                else None
            ),
        )  # fmt: skip
        fetched, totals, requests = 0, [], 0
        tally = counts is None
        counts = {} if counts is None else counts
        try:
            for page, fetched_at in pages:
                if purpose is not None:
                    requests += 1
                    result.count(purpose)
                fetched += page.count
                totals.append(total_of(page))
                if tally:
                    for b, n in _bucket_counts(
                        _cursors(self.dt.cursor, page), self.config.bucket_seconds
                    ).items():
                        counts[b] = counts.get(b, 0) + n
                writer.add(page, fetched_at)
                if opening:
                    self._checkpoint(exp, writer)
                self.ctx.progress("page", data_type=self.dt.name, experiment=exp, rows=page.count)
            writer.flush()
            if opening:
                self._checkpoint(exp, writer)
        finally:
            writer.close()
        result.rows += writer.rows
        result.files += len(writer.files)
        add_warnings(result, writer)
        total = totals[-1] if totals else None
        result.windows.append(
            self._window_entry(exp, lo, hi, fetched, writer.rows, total, requests,
                               len(writer.files), already=writer.skipped)
        )  # fmt: skip
        if tally and not reconciled(fetched, totals):
            return None
        counts.pop(None, None)  # rows without a readable time: not in any bucket
        self.state.complete_window(
            self.ctx.run_id, self.dt.name, exp, scope="experiment", scope_id=exp, start=start, end=end,
            rows=writer.rows, total=total, requests=requests,
            batch=writer.folder.name if writer.files else None,
            watermark=self.ctx.window_end if opening else None,
            tail=writer.tail, keep_tail=not opening,
            buckets=(lo, hi, counts),
        )  # fmt: skip
        return fetched

    def _reconcile(
        self, exp: str, lo: int | None, hi: int, total: int | None,
        result: PullResult,
    ) -> bool:  # fmt: skip
        """Bisect [lo, hi) until each part's API total matches its landed rows or fits
        in one page, which is then re-read; False when the run's budget ran out."""
        if total is None:
            if not self.ctx.spend_verification():
                return False
            total = total_of(self._get(exp, lo, hi, result, "verification"))
            if total is None:
                return False
        if total == self._known(exp, lo, hi):
            return True
        rows = self.state.bucket_rows(self.dt.name, exp, lo, hi)
        mid = _split(rows, sum(n for _, n in rows), lo, hi, self.config.bucket_seconds)
        if not self.ctx.spend_verification():
            return False
        if total <= self.config.page_size or mid is None:
            self._read(exp, lo, hi, result, "verification")
            return self._settle(exp, lo, hi, total, result)
        left = total_of(self._get(exp, lo, mid, result, "verification"))
        if left is None:
            return False
        return self._reconcile(exp, lo, mid, left, result) and self._reconcile(
            exp, mid, hi, total - left, result
        )

    def _window_entry(
        self, exp, lo, hi, fetched, rows, total, requests, files, already=0
    ) -> dict[str, Any]:  # fmt: skip
        return {
            "data_type": self.dt.name,
            "experiment_id": exp,
            "scope": "experiment",
            "scope_id": exp,
            "start": _iso_s(lo),
            "end": self.ctx.window_end if hi is None else _iso_ms(hi * 1000 - 1),
            "fetched": fetched,
            "rows": rows,
            "already_landed": already,
            "total": total,
            "requests": requests,
            "files": files,
        }

    def _checkpoint(self, exp: str, writer: BatchWriter) -> None:
        """After durable files: move the watermark to their newest row, if rows came sorted.

        A crash mid-window then resumes near where it stopped instead of from the
        window start; rows older than that are covered by the lookback.
        """
        files = writer.take_landed()
        if not files:
            return
        landed = files[-1]  # max_cursor is cumulative over the batch
        self.ctx.progress(
            "file", data_type=self.dt.name, experiment=exp, rows=sum(f.rows for f in files)
        )
        if writer.ordered and landed.max_cursor is not None:
            end = parse_time(self.ctx.window_end)
            mark = landed.max_cursor if end is None else min(landed.max_cursor, end)
            self.state.advance_watermark(self.dt.name, exp, to_iso(mark))


def _iso_s(seconds: int | None) -> str | None:
    return None if seconds is None else _iso_ms(seconds * 1000)


def _iso_ms(ms: int) -> str:
    return to_iso(datetime.fromtimestamp(ms / 1000, timezone.utc))


def _cursors(cursor: str | None, page: Envelope) -> list[Any]:
    """The `cursor` value of each record of a page."""
    return [r.get(cursor) if isinstance(r, dict) else None for r in page.records]


def _bucket_of(value: Any, width: int, cache: dict | None = None) -> int | None:
    """The bucket (epoch seconds) of a cursor value; None when it is no time."""
    if type(value) is str and len(value) == 24 and value[-1] == "Z" and width % 60 == 0:
        minute = value[:16]  # canonical text: buckets of whole minutes share the prefix
        if cache is not None and minute in cache:
            return cache[minute]
        moment = parse_time(minute + ":00Z")
        found = None if moment is None else int(moment.timestamp()) // width * width
        if cache is not None:
            cache[minute] = found
        return found
    moment = parse_time(value)
    return None if moment is None else int(moment.timestamp()) // width * width


def _bucket_counts(values: list[Any], width: int) -> dict[int | None, int]:
    """Rows per bucket (None: rows without a readable time)."""
    out: dict[int | None, int] = {}
    cache: dict[str, int | None] = {}
    for value in values:
        b = _bucket_of(value, width, cache)
        out[b] = out.get(b, 0) + 1
    return out


def _split(
    rows: list[tuple[int, int]], known: int, lo: int | None, hi: int, width: int
) -> int | None:
    """A bucket boundary inside (lo, hi) that halves the landed rows (or the time, when
    none are landed); None when the range is one bucket."""
    if known:
        seen = 0
        for bucket, n in rows:
            seen += n
            if seen * 2 >= known:
                mid = bucket + width
                break
        else:
            mid = hi
        if mid >= hi:  # the heaviest bucket is the last: split before it instead
            mid = rows[-1][0]
    elif lo is not None:
        mid = (lo + (hi - lo) // 2) // width * width
    else:
        return None
    if (lo is not None and mid <= lo) or mid >= hi:
        return None
    return mid
