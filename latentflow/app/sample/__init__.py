"""``latentflow sample``: load a model, refine a batch, write its output set (``sample``); under torchrun
(``sample_dist``); the sample file formats (``sample_files``); the report's metrics (``sample_metrics``).
Exports nothing: import the module that defines the thing."""
