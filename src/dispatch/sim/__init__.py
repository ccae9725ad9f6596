"""The simulator: scenarios, order logs, the simulation loop, KPIs, reports, sweeps and engines."""
