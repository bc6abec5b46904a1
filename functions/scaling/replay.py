"""Replay a per-minute request trace through the production decision code.

    python -m functions.scaling.replay --csv FILE --capacity R [--tz ZONE] [--rules FILE --region NAME]

The CSV has a header ``timestamp,requests`` (requests served in that minute; ISO 8601 timestamps,
naive ones in ``--tz``, default UTC; rows may be missing). ``R`` is the requests per minute one
instance serves at the target utilisation. Prints ``{"decisions": [{"timestamp", "min_instances",
"max_instances"}, ...]}``: one at the first row's timestamp, then one every minute on the clock
(the scheduler's cadence; the forecast is refreshed every 5), timestamps written as in the file,
in time order. A decision stamped T uses
only rows stamped before T. Without ``--rules`` the bounds are floor 0 and Cloud Run's ceiling of
1000 instances. An unusable file exits with status 2 and a message on stderr.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from functions.scaling.forecast import RECENT_MINUTES, ForecastConfig, History, drop_outages
from functions.scaling.models import Capacity, Decision, ScalingState
from functions.scaling.policy import DEFAULT_FORECAST, DEFAULT_POLICY, PolicyConfig, decide, on_grid
from functions.scaling.rules import RegionRules, RulesError, RuleSet, load_rules, unbounded
from functions.scaling.sources import LATEST_MINUTES
from functions.scaling.time_grid import HOUR, MINUTE, floor_hour
from shared.clock import iana_time_zone

STEP = MINUTE  # the scheduler's cadence


class TraceError(ValueError):
    """A trace that cannot be replayed (exit status 2)."""


@dataclass(frozen=True)
class Trace:
    minutes: list[datetime]  # UTC minute starts, sorted, unique
    requests: list[float]
    zone: ZoneInfo
    separator: str = "T"
    seconds: bool = True
    offset: tzinfo | None = None  # the first row's UTC offset; None: naive timestamps in ``zone``
    zulu: bool = False

    def format(self, at: datetime) -> str:
        """``at`` written as the file writes its timestamps."""
        timespec = "seconds" if self.seconds else "minutes"
        if self.offset is None:
            return (
                at.astimezone(self.zone).replace(tzinfo=None).isoformat(sep=self.separator, timespec=timespec)
            )
        text = at.astimezone(self.offset).isoformat(sep=self.separator, timespec=timespec)
        return text.replace("+00:00", "Z") if self.zulu else text


def read_trace(path: str | Path, zone: ZoneInfo) -> Trace:
    try:
        handle = open(path, newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise TraceError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header] != ["timestamp", "requests"]:
            raise TraceError(f"{path}: the header must be exactly 'timestamp,requests' (found {header!r})")
        totals: dict[datetime, float] = {}
        first: tuple[str, datetime] | None = None
        previous: datetime | None = None  # the row before's instant, in UTC
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise TraceError(f"{path} line {line}: expected 2 columns, found {len(row)}")
            text, value_text = row[0].strip(), row[1].strip()
            try:
                stamp = datetime.fromisoformat(text)
            except ValueError:
                raise TraceError(f"{path} line {line}: {text!r} is not an ISO 8601 timestamp") from None
            try:
                value = float(value_text)
            except ValueError:
                raise TraceError(f"{path} line {line}: requests {value_text!r} is not a number") from None
            if not math.isfinite(value) or value < 0:
                raise TraceError(
                    f"{path} line {line}: requests must be a finite number >= 0, not {value_text!r}"
                )
            if first is None:
                first = (text, stamp)
            elif (stamp.tzinfo is None) != (first[1].tzinfo is None):
                raise TraceError(f"{path} line {line}: mixes naive and zoned timestamps")
            if stamp.tzinfo is None:
                stamp = _wall_clock(stamp, zone, previous)
                if stamp is None:
                    raise TraceError(
                        f"{path} line {line}: {text!r} is on no clock in {zone.key} (the clocks skip "
                        "that hour); write the file in UTC or with offsets"
                    )
            previous = stamp.astimezone(UTC)
            minute = stamp.astimezone(UTC).replace(second=0, microsecond=0)
            totals[minute] = totals.get(minute, 0.0) + value
    if first is None:
        raise TraceError(f"{path}: no data rows")
    text, stamp = first
    time_part = text[11:].split("Z")[0].split("+")[0].split("-")[0]
    minutes = sorted(totals)
    return Trace(
        minutes=minutes,
        requests=[totals[m] for m in minutes],
        zone=zone,
        separator=text[10] if len(text) > 10 and text[10] in "T " else "T",
        seconds=time_part.count(":") >= 2,
        offset=stamp.tzinfo,
        zulu=text.endswith("Z"),
    )


def _wall_clock(naive: datetime, zone: ZoneInfo, previous: datetime | None) -> datetime | None:
    """A naive local time in ``zone``; None when the clocks skip it (spring). In the hour the
    clocks go back (listed twice by a file in wall-clock time, in order) it is the earlier of its
    two instants that is not before the row before it."""
    first, second = naive.replace(tzinfo=zone), naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    if first.utcoffset() < second.utcoffset():  # type: ignore[operator] - both aware
        return None  # a gap: fold only says which side's offset to read it with
    # In UTC: two times of one zone compare by their wall clocks, whatever their fold.
    return second if previous is not None and first.astimezone(UTC) < previous else first


class Replayer:
    """Streams decisions over a trace, feeding each only the rows before it (causal by design:
    an hour's mean is fixed when the hour ends, from the rows before that instant)."""

    def __init__(
        self,
        trace: Trace,
        capacity_rpm: float,
        region_rules: RegionRules | None = None,
        *,
        forecast_config: ForecastConfig = DEFAULT_FORECAST,
        policy_config: PolicyConfig = DEFAULT_POLICY,
        region: str = "replay",
        use_peaks: bool = False,
    ) -> None:
        # use_peaks: the trace's own hourly peaks (the bench's old figure). Off, the decision
        # records them from its per-minute reads as the function does.
        self.use_peaks = use_peaks
        self.trace = trace
        self.rules = region_rules or unbounded(str(trace.zone))
        self.ruleset = RuleSet(regions={region: self.rules})
        self.region = region
        self.capacity = Capacity(rpm=capacity_rpm, source="replay")
        self.forecast_config = forecast_config
        self.policy_config = policy_config
        self.hourly: dict[datetime, float] = {}
        self.hourly_peak: dict[datetime, float] = {}
        self.next_hour = floor_hour(trace.minutes[0])
        self.state = ScalingState()

    def _close_hours(self, at: datetime) -> None:
        minutes, requests = self.trace.minutes, self.trace.requests
        while self.next_hour + HOUR <= at:
            start, end = self.next_hour, self.next_hour + HOUR
            lo = bisect.bisect_left(minutes, start - HOUR)
            hi = bisect.bisect_left(minutes, end)
            window = {minutes[i]: requests[i] for i in range(lo, hi)}
            served = [
                v for m, v in drop_outages(window, self.forecast_config.outage_minutes).items() if m >= start
            ]
            if len(served) >= self.forecast_config.min_served_minutes:
                self.hourly[start] = sum(served) / len(served)
                if self.use_peaks:
                    self.hourly_peak[start] = max(served)
            self.next_hour = end
        cutoff = at - timedelta(days=self.forecast_config.history_days + 1)
        for hour in [h for h in self.hourly if h < cutoff]:
            del self.hourly[hour]
            self.hourly_peak.pop(hour, None)

    def decisions(self) -> Iterator[Decision]:
        minutes, requests = self.trace.minutes, self.trace.requests
        first, last = minutes[0], minutes[-1]
        state = self.state = ScalingState()
        zone = self.rules.zone
        at = first
        next_grid = datetime.fromtimestamp((math.floor(first.timestamp() / 60) + 1) * 60, UTC)
        while at <= last:
            self._close_hours(at)
            # Off the forecast grid a decision reads the last minutes only, as the function does.
            span = RECENT_MINUTES if on_grid(at, self.policy_config) else LATEST_MINUTES
            lo = bisect.bisect_left(minutes, at - span * MINUTE)
            hi = bisect.bisect_left(minutes, at)
            history = History(
                hourly=self.hourly,
                recent={minutes[i]: requests[i] for i in range(lo, hi)},
                first_seen=first,
                hourly_peak=self.hourly_peak if self.use_peaks else None,
            )
            decision, state = decide(
                region=self.region,
                at=at,
                history=history,
                state=state,
                bounds=self.ruleset.bounds(self.region, at),
                capacity=self.capacity,
                zone=zone,
                forecast_config=self.forecast_config,
                config=self.policy_config,
            )
            self.state = state
            yield decision
            at, next_grid = next_grid, next_grid + STEP


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m functions.scaling.replay", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--csv", required=True, help="per-minute trace with header timestamp,requests")
    parser.add_argument("--capacity", required=True, type=float, help="requests per minute per instance")
    parser.add_argument(
        "--tz", default="UTC", help="time zone of naive timestamps and of the rules (default UTC)"
    )
    parser.add_argument("--rules", help="a scaling rules YAML file (default: no bounds but Cloud Run's)")
    parser.add_argument("--region", help="the region of --rules to apply")
    args = parser.parse_args(argv)
    try:
        if not math.isfinite(args.capacity) or args.capacity <= 0:
            raise TraceError(
                f"--capacity must be a positive number of requests per minute, not {args.capacity}"
            )
        try:
            zone = iana_time_zone(args.tz)
        except ValueError:
            raise TraceError(f"--tz {args.tz!r} is not an IANA time zone (like Europe/Brussels)") from None
        region_rules = None
        if args.rules:
            ruleset = load_rules(args.rules)
            region = args.region or next(iter(ruleset.regions))
            if region not in ruleset.regions:
                raise TraceError(
                    f"--region {region!r} is not in {args.rules} (has {', '.join(ruleset.regions)})"
                )
            region_rules = ruleset.regions[region]
        trace = read_trace(args.csv, zone)
    except (TraceError, RulesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    replayer = Replayer(trace, args.capacity, region_rules)
    out = sys.stdout
    out.write('{"decisions": [')
    for index, decision in enumerate(replayer.decisions()):
        item = {
            "timestamp": trace.format(decision.at),
            "min_instances": decision.min_instances,
            "max_instances": decision.max_instances,
        }
        out.write(("," if index else "") + "\n  " + json.dumps(item))
    out.write("\n]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
