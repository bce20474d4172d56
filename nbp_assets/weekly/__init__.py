"""The weekly ranking (MOD-107): the eligibility gate, the signals, the scores and the top 3,
their checks, the weights that yield the model_version, and the weekly job and schedule."""
