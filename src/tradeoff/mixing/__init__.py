"""Mixing classifiers (Bai, Anderson, Sojoudi 2024) and the learned mixing network of adaptive smoothing, one
module per part: :mod:`.model` (the mixtures and the mixing network, classifier kinds ``mix`` and ``mixnet``),
:mod:`.spec` (descriptions of fixed-α mixtures; no torch), :mod:`.calibration` (temperature scaling),
:mod:`.fitting` (the mixing network's training) and :mod:`.evaluation` (the adaptive evaluation and the margins).
Nothing is imported here, so that the light ``mixing-spec`` job loads no torch."""
