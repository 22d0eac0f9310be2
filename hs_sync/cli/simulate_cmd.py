"""`hs-sync simulate`: serve the HyperStudy API simulator until Ctrl-C."""

from __future__ import annotations

import time

import click


@click.command("simulate")
@click.option("--seed", default=1, show_default=True, help="Dataset seed (same seed, same data).")
@click.option("--scale", default=1.0, show_default=True, help="1.0 is about 10,000 events.")
@click.option("--port", default=0, show_default=True, help="Port on 127.0.0.1 (0: a free one).")
@click.option("--live", is_flag=True, help="Advance the clock in real time; new rows keep coming.")
@click.option("--no-defects", is_flag=True, help="Plant no defects (a clean dataset).")
@click.option(
    "--int64-only",
    is_flag=True,
    help="Serve no integer beyond the signed 64-bit range (the same rows otherwise).",
)
@click.option(
    "--faults",
    default="",
    metavar="KIND=RATE,...",
    help="Fault rates, e.g. http_5xx=0.05,reset=0.01,slow=0.1 (kinds: http_5xx, html_5xx, "
    "reset, truncate, slow, rate_429).",
)
def command(
    seed: int,
    scale: float,
    port: int,
    live: bool,
    no_defects: bool,
    int64_only: bool,
    faults: str,
) -> None:
    """Serve a simulated HyperStudy v3 API on 127.0.0.1 and print its URL and a test key.

    \b
    Examples:
      hs-sync simulate --port 8765
      hs-sync simulate --scale 100 --live --faults http_5xx=0.05,rate_429=0.02
    """
    from hs_simulator import Simulator

    settings: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in faults.split(","))):
        name, _, value = item.partition("=")
        try:
            settings[name.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r} is not KIND=RATE", param_hint="--faults") from None
    started = time.monotonic()
    sim = Simulator(
        seed=seed,
        scale=scale,
        live=live,
        port=port,
        defects=not no_defects,
        wide_ints=not int64_only,
    )
    try:
        sim.faults.configure(**settings)
    except TypeError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    sim.start()
    events = len(sim.dataset.records("events"))
    click.echo(f"HyperStudy API simulator: {sim.base_url}")
    click.echo(f"API key (test only): {sim.api_key}")
    click.echo(
        f"seed {seed}, scale {scale}: {events} events in {len(sim.dataset.experiment_ids)} "
        f"experiments, ready in {time.monotonic() - started:.1f} s. Ctrl-C stops it."
    )
    try:
        while True:
            time.sleep(1.0)
            if live:
                sim.advance(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
