"""Baseline for the CLI benchmarks: a bare two-command typer app (what any typer CLI costs)."""

import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    print(f"hello {name}")


@app.command()
def version() -> None:
    """Print a version."""
    print("0.0.0")


if __name__ == "__main__":
    app()
