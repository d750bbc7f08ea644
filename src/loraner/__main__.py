"""``python -m loraner``: what ``torchrun -m loraner train ...`` and ``accelerate launch -m loraner`` run."""

from loraner.cli import main

if __name__ == "__main__":
    main()
