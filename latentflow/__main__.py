"""``python -m latentflow`` (and ``torchrun ... -m latentflow``): the command line."""

from latentflow.cli import main

if __name__ == "__main__":
    main(prog_name="latentflow")
