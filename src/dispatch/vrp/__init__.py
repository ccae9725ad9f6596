"""Routing on the literature's benchmark instances (Solomon VRPTW, Li & Lim PDPTW).

- ``problem``: the immutable instance (``VrpInstance``) and a solution (``VrpSolution``), shared by the readers,
  the checker, our solver and the peers.
"""
