"""Probabilistic (eps, kappa) robustness certification (Zhang et al. 2023): the fixed and group-sequential
hypothesis tests (:mod:`.sequential`), their settings and config checks (:mod:`.settings`), the decisions and
metrics computed from a sampling pass without torch (:mod:`.decisions`) and the stage's sampling job and merge
(:mod:`.records`)."""
