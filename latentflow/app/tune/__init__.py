"""``latentflow tune``: pick the method and settings that improve a GAN on held-out real samples (``tune``),
its plan and costs (``tune_plan``), its successive-halving search (``tune_search``), features (``tune_features``), input checks
(``tune_checks``), scores (``tune_metrics``) and the command line's reading and writing (``tune_cmd``).
Exports nothing: import the module that defines the thing."""
