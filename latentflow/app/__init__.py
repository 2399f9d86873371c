"""Applications built on the library: sampling runs, benchmarks, reports and ``tune``."""
