"""The node contract: typed messages on edges, the `Node` base with its ports and params, per-turn
work, provider protocols, and the process-wide resources nodes share."""
