"""``latentflow bench``: the benchmark suites as data (``suites``), the one runner that writes the JSON
first and the reports from it (``runner``), and the two suites: ``toy2d`` and ``images`` (with
``images_rows``, ``images_metrics``, ``images_any``, ``images_report``).
Exports nothing: import the module that defines the thing."""
