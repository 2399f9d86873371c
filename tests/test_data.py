"""latentflow.data.sample_shape: per-sample shapes of the datasets without loading them."""

import pytest

from latentflow.data import TOY, sample_shape
from latentflow.errors import OptionError
from latentflow.train.data_source import DataSource


def test_shapes():
    assert all(sample_shape(n) == (2,) for n in TOY)
    assert sample_shape("fashion-mnist") == (1, 28, 28)
    assert DataSource.shape_of("fashion-mnist") == (1, 28, 28)
    with pytest.raises(OptionError, match=r'Unknown dataset "cifar100"\. Available: .*fashion-mnist'):
        sample_shape("cifar100")
