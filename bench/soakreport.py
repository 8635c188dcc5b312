"""The churn soak's verdicts and table rows: RSS, fds and stayers per daphne (see :mod:`bench.scenarios.churn`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from bench.options import Options
from bench.report import check, fmt
from bench.scenarios import Outcome
from bench.soakclients import ChurnTally
from bench.stayers import UpdateVerdict, Verdict

MIB = 2**20


def trend_percent(points: Sequence[tuple[float, int]], baseline: int, over: float) -> float:
    """Least-squares slope of (seconds, RSS) points, as % of ``baseline`` per ``over`` seconds; NaN if too few."""
    if len(points) < 3:
        return float("nan")
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return float("nan")
    slope = sum((t - mean_t) * (r - mean_r) for t, r in points) / var
    return slope * over / baseline * 100


def soak_outcome(
    options: Options,
    ports: list[int],
    baseline: list[tuple[int, int]],
    final: list[tuple[int, int]],
    samples: list[tuple[float, list[tuple[int, int]]]],
    elapsed: float,
    tallies: tuple[ChurnTally, ChurnTally],
    judged: dict[int, dict],
    tail: float,
) -> Outcome:
    feed_tally, stream_tally = tallies
    churned = (feed_tally.total, stream_tally.total)
    errors = feed_tally.errors + stream_tally.errors
    first_error = feed_tally.first_error or stream_tally.first_error
    half = options.soak_seconds / 2
    daphnes = []
    for n, port in enumerate(ports):
        rss0, fds0 = baseline[n]
        rss1, fds1 = final[n]
        points = [(t, values[n][0]) for t, values in samples if t >= half]
        daphnes.append(
            {
                "port": port,
                "rss_baseline_mib": rss0 / MIB,
                "rss_final_mib": rss1 / MIB,
                "rss_peak_mib": max(values[n][0] for _, values in samples) / MIB,
                "rss_growth_percent": (rss1 - rss0) / rss0 * 100,
                "rss_trend_percent_per_10min": trend_percent(points, rss0, 600.0),
                "fds_baseline": fds0,
                "fds_final": fds1,
                "fds_peak": max(values[n][1] for _, values in samples),
                "fd_growth": fds1 - fds0,
                "feed_churns": feed_tally.completed.get(port, 0),
                "stream_churns": stream_tally.completed.get(port, 0),
                "feed_stayers": asdict(judged[port]["feed"]),
                "stream_stayer_closes": asdict(judged[port]["closes"]),
                "stream_stayer_updates": asdict(judged[port]["updates"]),
            }
        )
    feed_v, closes_v, updates_v = Verdict(), Verdict(), UpdateVerdict()
    for verdicts in judged.values():
        feed_v += verdicts["feed"]
        closes_v += verdicts["closes"]
        updates_v += verdicts["updates"]
    outcome = Outcome(
        "soak",
        {
            "seconds": options.soak_seconds,
            "warmup_seconds": options.soak_warmup,
            "elapsed_s": elapsed,
            "close_every_s": options.soak_close_seconds,
            "stayers_per_daphne": {"feed": options.soak_stayers, "streams": options.soak_stayers},
            "churn_rate_per_s": {"feed": options.soak_rate, "streams": options.soak_stream_rate},
            "feed_churns": churned[0],
            "stream_churns": churned[1],
            "churn_errors": feed_tally.errors + stream_tally.errors,
            "first_churn_error": feed_tally.first_error or stream_tally.first_error,
            "events_after_unsubscribe": stream_tally.after_unsubscribe,
            "tail_s": tail,
            "daphnes": daphnes,
            "samples": [(round(t, 1), [(round(r / MIB, 2), f) for r, f in values]) for t, values in samples],
        },
    )
    title = (
        f"churn soak ({options.soak_seconds:.0f} s after {options.soak_warmup:.0f} s warm-up, "
        f"{len(ports)} daphne + Redis, closes every {options.soak_close_seconds:g} s)"
    )
    for n, d in enumerate(daphnes):
        f, c, u = d["feed_stayers"], d["stream_stayer_closes"], d["stream_stayer_updates"]
        outcome.rows.append(
            (
                title if n == 0 else "",
                f"daphne-{n}: {d['feed_churns']:,} '/' + {d['stream_churns']:,} stream churns",
                f"RSS {fmt(d['rss_baseline_mib'])} -> {fmt(d['rss_final_mib'])} MiB "
                f"({d['rss_growth_percent']:+.1f}%, trend {d['rss_trend_percent_per_10min']:+.1f}%/10 min); "
                f"fds {d['fds_baseline']} -> {d['fds_final']} (peak {d['fds_peak']})",
                f"stayers '/': {f['received']:,} frames, lost {f['lost']} (coalesced {f['coalesced']}), "
                f"repeated {f['repeated']}, "
                f"reordered {f['reordered']}, unknown {f['unexpected']}; streams: closes {c['received']:,} "
                f"lost {c['lost']} repeated {c['repeated']} reordered {c['reordered']}; updates {u['received']:,} "
                f"lost {u['lost']} reordered {u['reordered']} (skipped at a close {u['skipped_at_close']})",
            )
        )
    rate = (churned[0] + churned[1]) / elapsed if elapsed else float("nan")
    outcome.rows.append(
        (
            "",
            "churners",
            f"{churned[0]:,} '/' and {churned[1]:,} stream sessions ({fmt(rate, 0)}/s)",
            f"{errors} errors{f' (first: {first_error})' if errors else ''}; "
            f"{stream_tally.after_unsubscribe} events after UNSUBSCRIBE; last close at every stayer in {tail:.1f} s",
        )
    )
    for n, d in enumerate(daphnes):
        outcome.targets.append(check(f"soak daphne-{n} RSS growth after warm-up (%)", d["rss_growth_percent"], "<", 5))
        if options.soak_seconds >= 120:  # a shorter soak's trend is noise
            outcome.targets.append(
                check(f"soak daphne-{n} RSS trend, 2nd half (%/10 min)", d["rss_trend_percent_per_10min"], "<", 5)
            )
        outcome.targets.append(check(f"soak daphne-{n} fd growth", float(d["fd_growth"]), "<=", 0))
    outcome.targets += [
        check("soak stayers: closes lost ('/' + streams)", float(feed_v.lost + closes_v.lost), "<=", 0),
        check(
            "soak stayers: closes repeated/reordered",
            float(feed_v.repeated + feed_v.reordered + feed_v.unexpected + closes_v.faults - closes_v.lost),
            "<=",
            0,
        ),
        check("soak stream stayers: updates lost/reordered", float(updates_v.lost + updates_v.reordered), "<=", 0),
        check(
            "soak churn errors",
            float(feed_tally.errors + stream_tally.errors + stream_tally.after_unsubscribe),
            "<=",
            0,
        ),
    ]
    return outcome
