"""``python -m diffbench`` runs the CLI."""

from diffbench.cli import main

if __name__ == "__main__":
    main()
