"""Routing on the literature's benchmark instances (Solomon VRPTW, Li & Lim PDPTW).

- ``problem``: the immutable instance (``VrpInstance``) and a solution (``VrpSolution``), shared by all below;
- ``readers``: the Solomon and Li & Lim text formats, strict (errors name the file, line and field);
- ``checker``: an independent feasibility check (windows, capacity, precedence, every task once, the fleet);
- ``solver``: our solver (numba ruin-and-recreate with fleet minimisation, then annealing on distance).

``dispatch bench routing`` (``dispatch.bench.routing``) runs them beside OR-Tools alone or PyVRP.
"""
