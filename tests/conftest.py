import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))

# one thread: the tests use small networks, where threads cost more than they give (and timings stay steady)
torch.set_num_threads(1)

HAS_CUDA = torch.cuda.is_available()

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs CUDA (marked gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_global_rng_leak(request):
    """Samplers given a generator must not touch the global RNG (design rule 6)."""
    if "rng_ok" in request.keywords:
        yield
        return
    state = torch.get_rng_state()
    yield
    assert torch.equal(state, torch.get_rng_state()), "the test consumed the global torch RNG"


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@pytest.fixture(scope="module")
def isolated_cache(tmp_path_factory):
    """A temporary ``$LATENTFLOW_CACHE`` (pins, statistics, converted weights) and CPU-only metrics."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LATENTFLOW_CACHE", str(tmp_path_factory.mktemp("lfcache")))
    mp.setenv("LATENTFLOW_DISABLE_CUDA", "1")
    yield
    mp.undo()


@pytest.fixture
def fashion_mnist():
    """The Fashion-MNIST folder, or a skip when the dataset is not installed (a user's fresh machine)."""
    from latentflow.data import find_fashion_mnist
    from latentflow.errors import LatentflowError

    try:
        return find_fashion_mnist()
    except LatentflowError as e:
        pytest.skip(f"Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist): {e}")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A folder holding a tiny exported 2-D G/D pair (see ``tiny_pair.py``): the command line's test model."""
    from tiny_pair import export_tiny

    return export_tiny(tmp_path_factory.mktemp("tiny"))
