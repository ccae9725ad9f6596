"""The simulator: scenarios, order logs, the simulation loop, KPIs, reports, sweeps and engines.

- :mod:`dispatch.sim.scenario`: ``load_scenario(path) -> Scenario``, every field validated (``ScenarioError`` names
  the dotted path of a bad field);
- :mod:`dispatch.sim.log`: the order-log schema, ``write_log`` / ``LogWriter``, ``read_log`` / ``iter_orders``
  (``LogError`` names the file and column);
- :mod:`dispatch.sim.generate`: ``generate(scenario, out_dir) -> GenerateSummary``, deterministic from the seed;
- :mod:`dispatch.sim.cities`: an embedded table of China's largest cities (approximate populations);
- :mod:`dispatch.sim.cli`: ``generate SCENARIO.toml --out DIR`` and ``check PATH`` (``dispatch ...`` or
  ``python -m dispatch.sim ...``);
- the simulation loop, shards, engines, KPIs and reports: ``loop``, ``shard``, ``run``, ``kpi``, ``report``,
  ``simulate_cli``.
"""

from dispatch.sim.generate import GenerateSummary, Plan, generate, plan
from dispatch.sim.log import (
    LogError,
    LogMeta,
    LogWriter,
    OrderColumns,
    OrderLog,
    RiderColumns,
    SiteColumns,
    TravelModel,
    iter_orders,
    read_log,
    read_meta,
    write_log,
)
from dispatch.sim.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = [
    "GenerateSummary",
    "LogError",
    "LogMeta",
    "LogWriter",
    "OrderColumns",
    "OrderLog",
    "Plan",
    "RiderColumns",
    "Scenario",
    "ScenarioError",
    "SiteColumns",
    "TravelModel",
    "generate",
    "iter_orders",
    "load_scenario",
    "parse_scenario",
    "plan",
    "read_log",
    "read_meta",
    "write_log",
]
