"""`python -m pairminer ...`: the same as the `pairminer` command."""

from .cli import main

if __name__ == "__main__":
    main()
