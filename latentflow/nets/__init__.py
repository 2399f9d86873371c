"""Network architectures: pure torch modules, importing nothing else of latentflow but its errors."""
