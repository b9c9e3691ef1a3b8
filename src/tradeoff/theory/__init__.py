"""The theory stage (Tsipras et al., ICLR 2019): closed forms of the accuracy-robustness trade-off on their
distribution (:mod:`.closed_forms`, numpy only) and the stage's job, which evaluates the reference and trained
linear classifiers next to them (:mod:`.tsipras`)."""
